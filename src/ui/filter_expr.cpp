#include "flowtop/ui/filter_expr.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "flowtop/ct/flow_record.hpp"

namespace flowtop::ui {

enum class Field { text, host, port, proto, family, state, proc, user, cc, netns, dir };

struct FilterExpr::Node {
    enum class Kind { all_of, any_of, negate, term } kind = Kind::term;
    std::vector<std::shared_ptr<const Node>> children;
    Field field = Field::text;
    std::string value;  // lower-cased
    // host: with an address or prefix
    std::optional<Addr> prefix;
    Family prefix_family = Family::ipv4;
    int prefix_bits = 0;
    // port: with numbers
    int port_lo = -1, port_hi = -1;
};

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool contains_ci(std::string_view hay, const std::string& needle_lower) {
    if (needle_lower.empty()) return true;
    auto it = std::search(hay.begin(), hay.end(), needle_lower.begin(), needle_lower.end(),
                          [](char a, char b) {
                              return std::tolower(static_cast<unsigned char>(a)) == b;
                          });
    return it != hay.end();
}

bool in_prefix(const Addr& a, const Addr& p, int bits) {
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
        const unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
        if ((a.bytes[i] & mask) != (p.bytes[i] & mask)) return false;
    }
    return true;
}

struct Token {
    std::string text;
    std::size_t column;
};

std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
            continue;
        }
        if (s[i] == '(' || s[i] == ')') {
            out.push_back({std::string(1, s[i]), i});
            ++i;
            continue;
        }
        std::size_t start = i;
        while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '(' &&
               s[i] != ')')
            ++i;
        out.push_back({std::string(s.substr(start, i - start)), start});
    }
    return out;
}

class Parser {
public:
    Parser(std::vector<Token> tokens, std::size_t length) : t_(std::move(tokens)), length_(length) {}

    std::shared_ptr<const FilterExpr::Node> parse(FilterError& error) {
        auto node = parse_or();
        if (node && pos_ < t_.size()) fail("unexpected '" + t_[pos_].text + "'", t_[pos_].column);
        if (failed_) {
            error = error_;
            return nullptr;
        }
        return node;
    }

private:
    using NodePtr = std::shared_ptr<FilterExpr::Node>;
    using Kind = FilterExpr::Node::Kind;

    bool at(const char* word) const { return pos_ < t_.size() && lower(t_[pos_].text) == word; }
    void fail(std::string message, std::size_t column) {
        if (failed_) return;
        failed_ = true;
        error_ = {std::move(message), column};
    }
    std::size_t column_here() const { return pos_ < t_.size() ? t_[pos_].column : length_; }

    NodePtr combine(Kind kind, NodePtr a, NodePtr b) {
        auto n = std::make_shared<FilterExpr::Node>();
        n->kind = kind;
        n->children = {std::move(a), std::move(b)};
        return n;
    }

    NodePtr parse_or() {
        NodePtr left = parse_and();
        while (left && at("or")) {
            ++pos_;
            NodePtr right = parse_and();
            if (!right) return nullptr;
            left = combine(Kind::any_of, left, right);
        }
        return left;
    }

    NodePtr parse_and() {
        NodePtr left = parse_unary();
        while (left && pos_ < t_.size() && !at("or") && t_[pos_].text != ")") {
            if (at("and")) ++pos_;
            NodePtr right = parse_unary();
            if (!right) return nullptr;
            left = combine(Kind::all_of, left, right);
        }
        return left;
    }

    NodePtr parse_unary() {
        if (pos_ >= t_.size()) {
            fail("expression ends too early", length_);
            return nullptr;
        }
        if (at("not")) {
            ++pos_;
            NodePtr inner = parse_unary();
            if (!inner) return nullptr;
            auto n = std::make_shared<FilterExpr::Node>();
            n->kind = Kind::negate;
            n->children = {inner};
            return n;
        }
        if (t_[pos_].text == "(") {
            const std::size_t open = t_[pos_].column;
            ++pos_;
            NodePtr inner = parse_or();
            if (!inner) return nullptr;
            if (pos_ >= t_.size() || t_[pos_].text != ")") {
                fail("missing ')' for the '(' here", open);
                return nullptr;
            }
            ++pos_;
            return inner;
        }
        if (t_[pos_].text == ")" || at("and") || at("or")) {
            fail("expected a term, found '" + t_[pos_].text + "'", t_[pos_].column);
            return nullptr;
        }
        return parse_term(t_[pos_++]);
    }

    NodePtr parse_term(const Token& tok) {
        auto n = std::make_shared<FilterExpr::Node>();
        const auto colon = tok.text.find(':');
        static const std::pair<const char*, Field> k_fields[] = {
            {"host", Field::host}, {"port", Field::port}, {"proto", Field::proto},
            {"family", Field::family}, {"state", Field::state}, {"proc", Field::proc},
            {"user", Field::user}, {"cc", Field::cc}, {"netns", Field::netns},
            {"dir", Field::dir}};
        if (colon == std::string::npos) {
            n->field = Field::text;
            n->value = lower(tok.text);
            return n;
        }
        const std::string name = lower(tok.text.substr(0, colon));
        const std::string value = tok.text.substr(colon + 1);
        const std::size_t value_column = tok.column + colon + 1;
        bool known = false;
        for (auto& [key, field] : k_fields)
            if (name == key) {
                n->field = field;
                known = true;
            }
        if (!known) {
            // An IPv6 address has colons too: then it is free text, not a field.
            if (parse_addr(tok.text)) {
                n->field = Field::text;
                n->value = lower(tok.text);
                return n;
            }
            fail("unknown field '" + name +
                     ":' (host port proto family state proc user cc netns dir)",
                 tok.column);
            return nullptr;
        }
        if (value.empty()) {
            fail("'" + name + ":' needs a value", value_column);
            return nullptr;
        }
        n->value = lower(value);
        if (n->field == Field::host) {
            std::string addr = value;
            int bits = -1;
            if (auto slash = value.find('/'); slash != std::string::npos) {
                addr = value.substr(0, slash);
                auto bits_text = value.substr(slash + 1);
                auto [p, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
                if (ec != std::errc() || p != bits_text.data() + bits_text.size()) {
                    fail("bad prefix length '" + bits_text + "'", value_column + slash + 1);
                    return nullptr;
                }
            }
            if (auto parsed = parse_addr(addr)) {
                const int max_bits = parsed->second == Family::ipv4 ? 32 : 128;
                if (bits < 0) bits = max_bits;
                if (bits > max_bits) {
                    fail("prefix length over " + std::to_string(max_bits), value_column);
                    return nullptr;
                }
                n->prefix = parsed->first;
                n->prefix_family = parsed->second;
                n->prefix_bits = bits;
            } else if (bits >= 0) {
                fail("'" + addr + "' is not an address", value_column);
                return nullptr;
            }
        } else if (n->field == Field::port) {
            if (std::isdigit(static_cast<unsigned char>(value[0]))) {
                auto dash = value.find('-');
                auto num = [&](std::string_view s, int& out) {
                    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
                    return ec == std::errc() && p == s.data() + s.size() && out >= 0 && out <= 65535;
                };
                const bool ok = dash == std::string::npos
                                    ? num(value, n->port_lo) && num(value, n->port_hi)
                                    : num(std::string_view(value).substr(0, dash), n->port_lo) &&
                                          num(std::string_view(value).substr(dash + 1), n->port_hi);
                if (!ok || n->port_lo > n->port_hi) {
                    fail("bad port or range '" + value + "' (0-65535, low-high)", value_column);
                    return nullptr;
                }
            }
        } else if (n->field == Field::dir) {
            if (n->value != "in" && n->value != "out" && n->value != "fwd") {
                fail("dir: takes in, out or fwd", value_column);
                return nullptr;
            }
        } else if (n->field == Field::family) {
            if (n->value == "4") n->value = "ipv4";
            if (n->value == "6") n->value = "ipv6";
            if (n->value != "ipv4" && n->value != "ipv6") {
                fail("family: takes ipv4 or ipv6", value_column);
                return nullptr;
            }
        }
        return n;
    }

    std::vector<Token> t_;
    std::size_t length_;
    std::size_t pos_ = 0;
    bool failed_ = false;
    FilterError error_;
};

bool match(const FilterExpr::Node& n, const table::Snapshot& snap, const table::FlowRow& row,
           const LocalAddresses* local) {
    using Kind = FilterExpr::Node::Kind;
    switch (n.kind) {
        case Kind::all_of:
            return std::all_of(n.children.begin(), n.children.end(),
                               [&](const auto& c) { return match(*c, snap, row, local); });
        case Kind::any_of:
            return std::any_of(n.children.begin(), n.children.end(),
                               [&](const auto& c) { return match(*c, snap, row, local); });
        case Kind::negate: return !match(*n.children[0], snap, row, local);
        case Kind::term: break;
    }
    const auto& ct = row.ct;
    const char* proto = ct::proto_name(ct.proto);
    const std::string proto_text = proto ? proto : std::to_string(ct.proto);
    const bool ports = ct.proto != IPPROTO_ICMP && ct.proto != IPPROTO_ICMPV6;
    switch (n.field) {
        case Field::host: {
            if (n.prefix) {
                if (ct.family != n.prefix_family) return false;
                for (const Addr* a : {&ct.orig.src, &ct.orig.dst, &ct.reply.src, &ct.reply.dst})
                    if (in_prefix(*a, *n.prefix, n.prefix_bits)) return true;
                return false;
            }
            return contains_ci(snap.str(row.dst_name), n.value) ||
                   contains_ci(snap.str(row.src_name), n.value);
        }
        case Field::port:
            if (n.port_lo >= 0) {
                if (!ports) return false;
                for (int p : {int{ct.orig.sport}, int{ct.orig.dport}, int{ct.reply.sport},
                              int{ct.reply.dport}})
                    if (p >= n.port_lo && p <= n.port_hi) return true;
                return false;
            }
            return lower(snap.str(row.service)) == n.value;
        case Field::proto: return proto_text == n.value;
        case Field::family: return (ct.family == Family::ipv4 ? "ipv4" : "ipv6") == n.value;
        case Field::state: {
            const char* st = ct.proto == IPPROTO_TCP ? ct::tcp_state_name(ct.tcp_state) : nullptr;
            if (n.value == "closed") return row.closed;
            if (n.value == "open") return !row.closed;
            return st && lower(st) == n.value;
        }
        case Field::proc: return contains_ci(snap.str(row.comm), n.value) ||
                                 (n.value == "forwarded" && row.forwarded);
        case Field::user: return lower(snap.str(row.user)) == n.value;
        case Field::cc:
            return lower(snap.str(row.dst_country)) == n.value ||
                   lower(snap.str(row.src_country)) == n.value;
        case Field::netns: return contains_ci(snap.str(row.netns), n.value);
        case Field::dir:
            if (n.value == "fwd") return row.forwarded;
            if (!local) return false;
            if (n.value == "out") return local->contains(ct.orig.src);
            return local->contains(ct.orig.dst) || local->contains(ct.reply.src);
        case Field::text: {
            const std::string_view fields[] = {
                proto_text,
                ct.proto == IPPROTO_TCP && ct::tcp_state_name(ct.tcp_state)
                    ? ct::tcp_state_name(ct.tcp_state) : "",
                snap.str(row.dst_name), snap.str(row.src_name), snap.str(row.service),
                snap.str(row.comm), snap.str(row.user), snap.str(row.dst_country),
                snap.str(row.dst_city), snap.str(row.dst_org), snap.str(row.container),
                snap.str(row.netns)};
            for (auto f : fields)
                if (contains_ci(f, n.value)) return true;
            for (const Addr* a : {&ct.orig.src, &ct.orig.dst, &ct.reply.src})
                if (contains_ci(a->to_string(ct.family), n.value)) return true;
            if (ports)
                for (int p : {int{ct.orig.sport}, int{ct.orig.dport}})
                    if (std::to_string(p) == n.value) return true;
            return false;
        }
    }
    return false;
}

}  // namespace

bool LocalAddresses::contains(const Addr& a) const noexcept {
    return std::find(addrs.begin(), addrs.end(), a) != addrs.end();
}

LocalAddresses LocalAddresses::of_current_namespace() {
    LocalAddresses out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        if (i->ifa_addr->sa_family == AF_INET)
            out.addrs.push_back(Addr::v4(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
        else if (i->ifa_addr->sa_family == AF_INET6)
            out.addrs.push_back(Addr::v6(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr));
    }
    freeifaddrs(list);
    return out;
}

FilterExpr::FilterExpr() = default;
FilterExpr::~FilterExpr() = default;
FilterExpr::FilterExpr(FilterExpr&&) noexcept = default;
FilterExpr& FilterExpr::operator=(FilterExpr&&) noexcept = default;
FilterExpr::FilterExpr(const FilterExpr&) = default;
FilterExpr& FilterExpr::operator=(const FilterExpr&) = default;

FilterExpr FilterExpr::parse(std::string_view text, FilterError* error) {
    FilterExpr expr;
    auto tokens = tokenize(text);
    if (tokens.empty()) return expr;  // empty: matches everything
    FilterError e;
    Parser parser(std::move(tokens), text.size());
    auto root = parser.parse(e);
    if (!root) {
        if (error) *error = e;
        return FilterExpr{};
    }
    expr.root_ = std::move(root);
    expr.text_ = std::string(text);
    return expr;
}

bool FilterExpr::matches(const table::Snapshot& snap, const table::FlowRow& row,
                         const LocalAddresses* local) const {
    return !root_ || match(*root_, snap, row, local);
}

}  // namespace flowtop::ui

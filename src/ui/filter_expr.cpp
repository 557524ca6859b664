#include "flowtop/ui/filter_expr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::ui {

enum class Field {
    text,
    host,
    port,
    proto,
    family,
    state,
    proc,
    user,
    cc,
    netns,
    dir,
    alert,
    asn,
    org,
    nat,
    client,
    status
};

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

// IPS_SEEN_REPLY and IPS_ASSURED of linux/netfilter/nf_conntrack_common.h.
constexpr std::uint32_t k_status_seen_reply = 1u << 1;
constexpr std::uint32_t k_status_assured = 1u << 2;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool contains_ci(std::string_view hay, const std::string& needle_lower) {
    if (needle_lower.empty()) return true;
    auto it = std::search(
        hay.begin(), hay.end(), needle_lower.begin(), needle_lower.end(),
        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
    return it != hay.end();
}

bool in_prefix(const Addr& a, const Addr& p, int bits) {
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
        const unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
        if ((a.bytes[i] & mask) != (p.bytes[i] & mask)) return false;
    }
    return true;
}

// Digits and dots with at least one dot, or any colon: the user wrote an address.
bool looks_like_address(std::string_view s) {
    if (s.find(':') != std::string_view::npos) return true;
    return s.find('.') != std::string_view::npos &&
           s.find_first_not_of("0123456789.") == std::string_view::npos;
}

bool known_proto(const std::string& name) {
    for (int p = 0; p <= 255; ++p)
        if (const char* known = ct::proto_name(static_cast<std::uint8_t>(p));
            known && name == known)
            return true;
    return false;
}

bool known_state(const std::string& name) {
    if (name == "open" || name == "closed") return true;
    for (std::uint8_t s = 0; const char* known = ct::tcp_state_name(s); ++s)
        if (lower(known) == name) return true;
    return false;
}

std::string tcp_state_list() {
    std::string out;
    for (std::uint8_t s = 0; const char* known = ct::tcp_state_name(s); ++s)
        out += (out.empty() ? "" : " ") + lower(known);
    return out;
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
    Parser(std::vector<Token> tokens, std::size_t length)
        : t_(std::move(tokens)), length_(length) {}

    std::shared_ptr<const FilterExpr::Node> parse(FilterError& error) {
        auto node = parse_or();
        if (node && pos_ < t_.size())
            fail("unexpected '" + quote_input(t_[pos_].text) + "'", t_[pos_].column);
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

    // A run of terms joined by one operator becomes one node with many children, not a chain:
    // 20,000 `tcp` terms are one level deep, so neither matching nor freeing them recurses.
    NodePtr join(Kind kind, std::vector<std::shared_ptr<const FilterExpr::Node>> children) {
        if (children.size() == 1) return std::const_pointer_cast<FilterExpr::Node>(children[0]);
        auto n = std::make_shared<FilterExpr::Node>();
        n->kind = kind;
        n->children = std::move(children);
        return n;
    }

    NodePtr parse_or() {
        std::vector<std::shared_ptr<const FilterExpr::Node>> terms;
        NodePtr left = parse_and();
        if (!left) return nullptr;
        terms.push_back(std::move(left));
        while (at("or")) {
            ++pos_;
            NodePtr right = parse_and();
            if (!right) return nullptr;
            terms.push_back(std::move(right));
        }
        return join(Kind::any_of, std::move(terms));
    }

    NodePtr parse_and() {
        std::vector<std::shared_ptr<const FilterExpr::Node>> terms;
        NodePtr left = parse_unary();
        if (!left) return nullptr;
        terms.push_back(std::move(left));
        while (pos_ < t_.size() && !at("or") && t_[pos_].text != ")") {
            if (at("and")) ++pos_;
            NodePtr right = parse_unary();
            if (!right) return nullptr;
            terms.push_back(std::move(right));
        }
        return join(Kind::all_of, std::move(terms));
    }

    // Parentheses and `not` nest; each level is a few stack frames here and one in the matcher.
    // The limit keeps both far from the end of any stack (a thread's 8 MiB, or less) while no
    // hand-written filter comes near it.
    bool deeper(std::size_t column) {
        if (++depth_ <= k_max_filter_depth) return true;
        fail("nested too deep (more than " + std::to_string(k_max_filter_depth) +
                 " levels of '(' and 'not')",
             column);
        return false;
    }

    NodePtr parse_unary() {
        if (pos_ >= t_.size()) {
            fail("expression ends too early", length_);
            return nullptr;
        }
        if (at("not")) {
            if (!deeper(t_[pos_].column)) return nullptr;
            ++pos_;
            NodePtr inner = parse_unary();
            --depth_;
            if (!inner) return nullptr;
            auto n = std::make_shared<FilterExpr::Node>();
            n->kind = Kind::negate;
            n->children = {inner};
            return n;
        }
        if (t_[pos_].text == "(") {
            const std::size_t open = t_[pos_].column;
            if (!deeper(open)) return nullptr;
            ++pos_;
            NodePtr inner = parse_or();
            --depth_;
            if (!inner) return nullptr;
            if (pos_ >= t_.size() || t_[pos_].text != ")") {
                fail("missing ')' for the '(' here", open);
                return nullptr;
            }
            ++pos_;
            return inner;
        }
        if (t_[pos_].text == ")" || at("and") || at("or")) {
            fail("expected a term, found '" + quote_input(t_[pos_].text) + "'", t_[pos_].column);
            return nullptr;
        }
        return parse_term(t_[pos_++]);
    }

    NodePtr parse_term(const Token& tok) {
        auto n = std::make_shared<FilterExpr::Node>();
        const auto colon = tok.text.find(':');
        static const std::pair<const char*, Field> k_fields[] = {
            {"host", Field::host},     {"port", Field::port},     {"proto", Field::proto},
            {"family", Field::family}, {"state", Field::state},   {"proc", Field::proc},
            {"user", Field::user},     {"cc", Field::cc},         {"netns", Field::netns},
            {"dir", Field::dir},       {"alert", Field::alert},   {"asn", Field::asn},
            {"org", Field::org},       {"client", Field::client}, {"nat", Field::nat},
            {"status", Field::status}};
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
            fail("unknown field '" + quote_input(name) +
                     ":' (host port proto family state proc user cc netns dir alert asn org "
                     "client nat status)",
                 tok.column);
            return nullptr;
        }
        if (value.empty()) {
            fail("'" + quote_input(name) + ":' needs a value", value_column);
            return nullptr;
        }
        n->value = lower(value);
        if (n->field == Field::host ||
            (n->field == Field::client && n->value != "any" && n->value != "none")) {
            std::string addr = value;
            int bits = -1;
            if (auto slash = value.find('/'); slash != std::string::npos) {
                addr = value.substr(0, slash);
                auto bits_text = value.substr(slash + 1);
                auto [p, ec] =
                    std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
                if (ec != std::errc() || p != bits_text.data() + bits_text.size()) {
                    fail("bad prefix length '" + quote_input(bits_text) + "'",
                         value_column + slash + 1);
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
            } else if (bits >= 0 || looks_like_address(addr) || n->field == Field::client) {
                // Digits and dots, or a colon: meant as an address, so never a silent name
                // search that matches nothing (host:999.1.1.1).
                fail("'" + quote_input(addr) + "' is not an IPv4 or IPv6 address", value_column);
                return nullptr;
            }
        } else if (n->field == Field::port) {
            if (std::isdigit(static_cast<unsigned char>(value[0])) || value[0] == '-' ||
                value[0] == '+') {
                auto dash = value.find('-');
                auto num = [&](std::string_view s, int& out) {
                    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
                    return ec == std::errc() && p == s.data() + s.size() && out >= 0 &&
                           out <= 65535;
                };
                const bool ok = dash == std::string::npos
                                    ? num(value, n->port_lo) && num(value, n->port_hi)
                                    : num(std::string_view(value).substr(0, dash), n->port_lo) &&
                                          num(std::string_view(value).substr(dash + 1), n->port_hi);
                if (!ok || n->port_lo > n->port_hi) {
                    fail("bad port or range '" + quote_input(value) + "' (0-65535, low-high)",
                         value_column);
                    return nullptr;
                }
            }
        } else if (n->field == Field::dir) {
            if (n->value != "in" && n->value != "out" && n->value != "fwd") {
                fail("dir: takes in, out or fwd", value_column);
                return nullptr;
            }
        } else if (n->field == Field::nat) {
            if (n->value != "snat" && n->value != "dnat" && n->value != "both" &&
                n->value != "none") {
                fail("nat: takes snat, dnat, both or none", value_column);
                return nullptr;
            }
        } else if (n->field == Field::status) {
            if (n->value != "unreplied" && n->value != "replied" && n->value != "assured" &&
                n->value != "offload") {
                fail("status: takes unreplied, replied, assured or offload", value_column);
                return nullptr;
            }
        } else if (n->field == Field::proto) {
            // A number names the protocol the way the rows show it (6 is tcp).
            int number = -1;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
            const bool numeric = ec == std::errc() && p == value.data() + value.size();
            if (numeric && number >= 0 && number <= 255) {
                const char* proto_known = ct::proto_name(static_cast<std::uint8_t>(number));
                n->value = proto_known ? proto_known : std::to_string(number);
            } else if (numeric || !known_proto(n->value)) {
                fail(
                    "proto: takes a protocol name (tcp udp icmp icmpv6 sctp dccp udplite gre) "
                    "or a number 0-255",
                    value_column);
                return nullptr;
            }
        } else if (n->field == Field::state) {
            if (!known_state(n->value)) {
                fail("state: takes open, closed or a TCP state (" + tcp_state_list() + ")",
                     value_column);
                return nullptr;
            }
        } else if (n->field == Field::asn) {
            // asn:15169 or asn:AS15169, as whois and the detail panel write it.
            if (n->value.rfind("as", 0) == 0) n->value.erase(0, 2);
            if (n->value.empty() || n->value.find_first_not_of("0123456789") != std::string::npos) {
                fail("asn: takes an AS number (15169 or AS15169)", value_column);
                return nullptr;
            }
            n->value.erase(0, std::min(n->value.find_first_not_of('0'), n->value.size() - 1));
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
    std::size_t depth_ = 0;
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
        case Kind::negate:
            return !match(*n.children[0], snap, row, local);
        case Kind::term:
            break;
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
        case Field::proto:
            return proto_text == n.value;
        case Field::family:
            return (ct.family == Family::ipv4 ? "ipv4" : "ipv6") == n.value;
        case Field::state: {
            const char* st = ct.proto == IPPROTO_TCP ? ct::tcp_state_name(ct.tcp_state) : nullptr;
            if (n.value == "closed") return row.closed;
            if (n.value == "open") return !row.closed;
            return st && lower(st) == n.value;
        }
        case Field::proc:
            return contains_ci(snap.str(row.comm), n.value) ||
                   (n.value == "forwarded" && row.forwarded);
        case Field::user:
            return lower(snap.str(row.user)) == n.value;
        case Field::cc:
            return lower(snap.str(row.dst_country)) == n.value ||
                   lower(snap.str(row.src_country)) == n.value;
        case Field::netns:
            return contains_ci(snap.str(row.netns), n.value);
        case Field::alert:
            // alert:N the evidence of alert N; alert:any every flow that is evidence of one.
            if (n.value == "any") return row.alert != 0;
            return row.alert != 0 && std::to_string(row.alert) == n.value;
        case Field::asn:
            return row.dst_asn != 0 && std::to_string(row.dst_asn) == n.value;
        case Field::org:
            return contains_ci(snap.str(row.dst_org), n.value);
        case Field::nat: {
            // nat:snat and nat:dnat include the flows translated both ways.
            const ct::Nat nat = ct::nat_of(ct);
            if (n.value == "none") return nat == ct::Nat::none;
            if (n.value == "both") return nat == ct::Nat::both;
            if (n.value == "snat") return nat == ct::Nat::snat || nat == ct::Nat::both;
            return nat == ct::Nat::dnat || nat == ct::Nat::both;
        }
        case Field::status: {
            // The conntrack status bits a table-pressure hunt reads (IPS_SEEN_REPLY,
            // IPS_ASSURED, IPS_OFFLOAD/HW_OFFLOAD): what `conntrack -L` marks [UNREPLIED],
            // [ASSURED], [OFFLOAD]. A row whose event left the status out matches none.
            if (!ct.has_status) return false;
            if (n.value == "offload") return ct::offloaded(ct);
            if (n.value == "assured") return (ct.status & k_status_assured) != 0;
            const bool replied = (ct.status & k_status_seen_reply) != 0;
            return n.value == "replied" ? replied : !replied;
        }
        case Field::dir:
            if (n.value == "fwd") return row.forwarded;
            if (!local) return false;
            // The attributor's notion of the two ends: a DNAT address of ours is no end, so a
            // port-forwarded flow is fwd, not in.
            if (n.value == "out") return local->ends(ct.family, ct.orig.src, ct.reply.src).client;
            return local->ends(ct.family, ct.orig.src, ct.reply.src).server;
        case Field::client: {
            // The flow's LAN client (the Clients tab's row it counts in): any, none, or within
            // an address or prefix.
            if (!local) return false;
            const Addr* end = lan_client_addr(*local, ct);
            if (n.value == "any") return end != nullptr;
            if (n.value == "none") return end == nullptr;
            return end && n.prefix && ct.family == n.prefix_family &&
                   in_prefix(*end, *n.prefix, n.prefix_bits);
        }
        case Field::text: {
            const std::string_view fields[] = {
                proto_text,
                ct.proto == IPPROTO_TCP && ct::tcp_state_name(ct.tcp_state)
                    ? ct::tcp_state_name(ct.tcp_state)
                    : "",
                snap.str(row.dst_name),
                snap.str(row.src_name),
                snap.str(row.service),
                snap.str(row.comm),
                snap.str(row.user),
                snap.str(row.dst_country),
                snap.str(row.dst_city),
                snap.str(row.dst_org),
                snap.str(row.container),
                snap.str(row.netns)};
            for (auto f : fields)
                if (contains_ci(f, n.value)) return true;
            // Both tuples: a masqueraded flow's WAN address and a port forward's internal
            // target are shown too.
            for (const Addr* a : {&ct.orig.src, &ct.orig.dst, &ct.reply.src, &ct.reply.dst})
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

FilterExpr::FilterExpr() = default;
FilterExpr::~FilterExpr() = default;
FilterExpr::FilterExpr(FilterExpr&&) noexcept = default;
FilterExpr& FilterExpr::operator=(FilterExpr&&) noexcept = default;
FilterExpr::FilterExpr(const FilterExpr&) = default;
FilterExpr& FilterExpr::operator=(const FilterExpr&) = default;

FilterExpr FilterExpr::parse(std::string_view text, FilterError* error) {
    FilterExpr expr;
    if (text.size() > k_max_filter_length) {
        if (error)
            *error = {"longer than " + std::to_string(k_max_filter_length) + " characters",
                      k_max_filter_length};
        return expr;
    }
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

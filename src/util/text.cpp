#include "flowtop/util/text.hpp"

#include <cstdio>

namespace flowtop {
namespace {

// Length of the valid, safe UTF-8 sequence at s[i], or 0 when the byte there must be escaped.
// Sets `code` to the code point for the caller's check of the few unsafe ones above U+009F.
std::size_t safe_sequence(std::string_view s, std::size_t i, char32_t& code) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
        code = c;
        return 1;
    }
    std::size_t len = 0;
    char32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        code = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        code = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        code = c & 0x07;
        min = 0x10000;
    } else {
        return 0;  // C0 control, DEL, a stray continuation byte or an invalid lead byte
    }
    if (i + len > s.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0) != 0x80) return 0;
        code = (code << 6) | (b & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
    // C1 controls (an 8-bit CSI is U+009B), and the bidirectional embeddings, overrides and
    // isolates that make a terminal show text in another order than it is stored.
    if (code <= 0x9F || (code >= 0x202A && code <= 0x202E) || (code >= 0x2066 && code <= 0x2069))
        return 0;
    return len;
}

}  // namespace

bool is_clean(std::string_view s) noexcept {
    char32_t code = 0;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = safe_sequence(s, i, code);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

std::string sanitize(std::string_view s) {
    if (is_clean(s)) return std::string(s);
    std::string out;
    out.reserve(s.size() + 16);
    char32_t code = 0;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = safe_sequence(s, i, code);
        if (len > 0) {
            out.append(s.substr(i, len));
            i += len;
            continue;
        }
        char buf[12];
        // A well-formed but unsafe code point is named as such; a bad byte by its value.
        char32_t unsafe = 0;
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t seq = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 0;
        if (seq && i + seq <= s.size()) {
            unsafe = c & (seq == 2 ? 0x1F : 0x0F);
            bool ok = true;
            for (std::size_t k = 1; k < seq && ok; ++k) {
                const auto b = static_cast<unsigned char>(s[i + k]);
                ok = (b & 0xC0) == 0x80;
                unsafe = (unsafe << 6) | (b & 0x3F);
            }
            const bool c1 = seq == 2 && unsafe >= 0x80 && unsafe <= 0x9F;
            const bool bidi = seq == 3 && ((unsafe >= 0x202A && unsafe <= 0x202E) ||
                                           (unsafe >= 0x2066 && unsafe <= 0x2069));
            if (ok && (c1 || bidi)) {
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(unsafe));
                out += buf;
                i += seq;
                continue;
            }
        }
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
        ++i;
    }
    return out;
}

std::string replace_unsafe(std::string_view s, char with) {
    std::string out;
    out.reserve(s.size());
    char32_t code = 0;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = safe_sequence(s, i, code);
        if (len == 0) {
            out += with;
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

std::string_view cap_utf8(std::string_view s, std::size_t max_bytes) noexcept {
    if (s.size() <= max_bytes) return s;
    std::size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

std::string quote_input(std::string_view s, std::size_t max_chars) {
    const bool cut = s.size() > max_chars;
    std::string out = sanitize(cap_utf8(s, max_chars));
    if (cut) out += "...";
    return out;
}

std::string_view trim_blanks(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

std::string csv_quote(std::string_view s) {
    if (s.find_first_of(",\"") == std::string_view::npos) return std::string(s);
    std::string q = "\"";
    for (char c : s) {
        if (c == '"') q += '"';
        q += c;
    }
    return q + '"';
}

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    for (unsigned char ch : s) {
        switch (ch) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (ch < 0x20 || ch == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", ch);
                    out += buf;
                } else {
                    out += static_cast<char>(ch);
                }
        }
    }
    return out;
}

}  // namespace flowtop

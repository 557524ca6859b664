#pragma once
// Text that others control (process names and command lines, user names, PTR answers, service
// names from conf files, mmdb strings, namespace labels) reaches root's terminal, files and
// pipes. A process may name itself "\e[2J\e]0;PWN\a" (prctl PR_SET_NAME): written raw, that
// clears the reader's screen, retitles the window or worse. Everything that enters the string
// pool, and every writer on its way out, passes through sanitize(): control characters (C0,
// DEL, C1), NULs, invalid UTF-8 and the bidirectional overrides that reorder what a reader sees
// are replaced by visible escapes (\x1b, \u202e). Printable text, UTF-8 included, is unchanged,
// and sanitizing twice changes nothing more.
#include <cstddef>
#include <string>
#include <string_view>

namespace flowtop {

// True when sanitize(s) == s (the fast path: one scan, no copy).
bool is_clean(std::string_view s) noexcept;
// s with every unsafe byte or code point replaced by its visible escape.
std::string sanitize(std::string_view s);
// s with every unsafe byte replaced by `with` (one byte for one: the width a caller counted
// stays the same or shrinks).
std::string replace_unsafe(std::string_view s, char with);
// At most max_bytes of s, cut at a UTF-8 character boundary.
std::string_view cap_utf8(std::string_view s, std::size_t max_bytes) noexcept;
// For messages that echo input: sanitized, and cut to max_chars with "..." (so a 1 MiB line
// is not echoed whole to stderr).
std::string quote_input(std::string_view s, std::size_t max_chars = 80);

// Without the blanks (spaces, tabs, a CR of a CRLF line) at either end: conf and flowtoprc
// lines share it.
std::string_view trim_blanks(std::string_view s) noexcept;

// JSON string escaping (RFC 8259), DEL included; the batch lines, alerts and logs share it.
std::string json_escape(std::string_view s);

// A CSV field (RFC 4180): in double quotes, inner ones doubled, when it holds a comma or a quote;
// as it is otherwise. Cleaning the text first is the caller's business.
std::string csv_quote(std::string_view s);

}  // namespace flowtop

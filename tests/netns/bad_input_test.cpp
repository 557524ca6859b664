// The bad-input catalogue (man/flowtop.8, DIAGNOSTICS): every row runs the built flowtop inside
// a test namespace with one bad input and checks the exact message, the exit status, that it
// neither crashed nor hung, and that the namespace's nf_conntrack_acct and _timestamp are as
// they were (0) afterwards. Rows marked tty run in a private tmux server and also check that
// the terminal's modes (stty -g) are the same before and after.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "mmdb_writer.hpp"

// Rows give only the fields they need; the rest keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace flowtop::test;
namespace fs = std::filesystem;

namespace {

const char* k_acct = "net.netfilter.nf_conntrack_acct";
const char* k_ts = "net.netfilter.nf_conntrack_timestamp";
const std::string k_try = "Try 'flowtop --help' for more information.";
const std::string k_deep = "nested too deep (more than 100 levels of '(' and 'not')";

struct Row {
    const char* name;
    std::string args;                // after the binary; $D is the row's fixture directory
    int status;                      // exit status as the shell reports it (128+N: signal N)
    std::vector<std::string> lines;  // stderr lines that must appear, whole
    bool exact = false;              // stderr is exactly `lines`, nothing else
    std::string pre;                 // shell text before the command (env, ulimit)
    std::string redirect;            // stdin/stdout redirections; default stdout to $D/out
    std::string in_ns;               // a wrapper inside the namespace (setpriv, unshare)
    bool tty = false;                // run in tmux: the live view
    int width = 100, height = 30;
    std::string wait_screen;  // tty: text to wait for on the screen, then send `keys`
    std::string keys;
};

// gtest prints a failing row by its name, not its bytes.
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream s(text);
    for (std::string line; std::getline(s, line);) out.push_back(line);
    return out;
}

// The fixtures every row may name through $D.
std::string make_fixtures() {
    std::string tmpl = (fs::temp_directory_path() / "flowtop-bad-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    const std::string d = tmpl;
    write_file(d + "/empty.mmdb", "");
    std::string noise;
    for (int i = 0; i < 4096; ++i) noise += static_cast<char>((i * 7919 + 13) & 0xff);
    write_file(d + "/random.mmdb", noise);
    fs::create_directory(d + "/dir.mmdb");
    fs::create_directory(d + "/closed-home");
    fs::permissions(d + "/closed-home", fs::perms::owner_all);
    auto [city, asn] = write_maxmind_fixtures(d);
    fs::copy_file(city, d + "/truncated.mmdb");
    fs::resize_file(d + "/truncated.mmdb", fs::file_size(city) / 2);
    const std::pair<const char*, std::string> confs[] = {
        {"port99999", "99999, big\n"},
        {"porttext", "80x, http\n"},
        {"noname", "80,\n"},
        {"megaline", "82, " + std::string(1 << 20, 'x') + "\n"},
        {"nul", std::string("80, ht\0tp\n", 10)},
    };
    for (const auto& [dir, text] : confs) {
        fs::create_directory(d + "/" + dir);
        write_file(d + "/" + dir + "/tcp.conf", text);
        write_file(d + "/" + dir + "/udp.conf", "53, domain\n");
    }
    write_file(d + "/parens", repeat("(", 10000) + "tcp" + repeat(")", 10000));
    write_file(d + "/nots", repeat("not ", 32767) + "tcp");
    write_file(d + "/terms", repeat("tcp ", 20000));
    return d;
}

std::string note_geo(const std::string& what) { return "flowtop: note: GeoIP database " + what; }

const std::string k_batch = "-o json -c 1 -t 0.2 -n ";

std::vector<Row> catalogue() {
    return {
        {"UnknownFlag", "--bogus", 2, {"flowtop: unknown option --bogus", k_try}, true},
        {"IntervalZero",
         "-t 0",
         2,
         {"flowtop: invalid interval '0': give seconds between 0.1 and 3600", k_try},
         true},
        {"IntervalNegative",
         "-t -1",
         2,
         {"flowtop: invalid interval '-1': give seconds between 0.1 and 3600", k_try},
         true},
        {"IntervalNotANumber",
         "-t abc",
         2,
         {"flowtop: invalid interval 'abc': give seconds between 0.1 and 3600", k_try},
         true},
        {"CountZero",
         "-c 0",
         2,
         {"flowtop: invalid count '0': give a whole number >= 1", k_try},
         true},
        {"CountNegative",
         "-c -5",
         2,
         {"flowtop: invalid count '-5': give a whole number >= 1", k_try},
         true},
        {"OutputUnknown",
         "-o yaml",
         2,
         {"flowtop: invalid output format 'yaml': use table, json or csv", k_try},
         true},
        {"SortUnknown",
         "--sort bogus",
         2,
         {"flowtop: unknown sort column 'bogus': use one of rate, orig_rate, reply_rate, bytes, "
          "orig_bytes, reply_bytes, age, proto, state, src, dst, dport, process, country, flows",
          k_try},
         true},
        {"NetnsMissing",
         k_batch + "--netns ftnosuchns",
         1,
         {"flowtop: network namespace 'ftnosuchns' does not exist (see 'ip netns list')"},
         true},
        {"GeoipMissing",
         k_batch + "--geoip-db $D/missing.mmdb",
         0,
         {note_geo("$D/missing.mmdb: No such file or directory: skipped")}},
        {"GeoipDirectory",
         k_batch + "--geoip-db $D/dir.mmdb",
         0,
         {note_geo("$D/dir.mmdb is a directory, not an mmdb file: skipped")}},
        {"GeoipEmpty",
         k_batch + "--geoip-db $D/empty.mmdb",
         0,
         {note_geo("$D/empty.mmdb is empty: skipped")}},
        {"GeoipRandomBytes",
         k_batch + "--geoip-db $D/random.mmdb",
         0,
         {note_geo("$D/random.mmdb is not a valid mmdb file (The MaxMind DB file contains "
                   "invalid metadata): skipped")}},
        {"GeoipTruncated",
         k_batch + "--geoip-db $D/truncated.mmdb",
         0,
         {note_geo("$D/truncated.mmdb is not a valid mmdb file (The MaxMind DB file contains "
                   "invalid metadata): skipped")}},
        {"ConfPort99999",
         k_batch + "-G --conf-dir $D/port99999",
         0,
         {"flowtop: note: $D/port99999/tcp.conf:1: bad port \"99999\" (0-65535)"}},
        {"ConfPortNotANumber",
         k_batch + "-G --conf-dir $D/porttext",
         0,
         {"flowtop: note: $D/porttext/tcp.conf:1: bad port \"80x\" (0-65535)"}},
        {"ConfMissingName",
         k_batch + "-G --conf-dir $D/noname",
         0,
         {"flowtop: note: $D/noname/tcp.conf:1: missing service name after \"80,\""}},
        {"ConfMegabyteLine",
         k_batch + "-G --conf-dir $D/megaline",
         0,
         {"flowtop: note: $D/megaline/tcp.conf:1: service name \"" + std::string(32, 'x') +
          "...\" is longer than 32 characters"}},
        {"ConfNulByte",
         k_batch + "-G --conf-dir $D/nul",
         0,
         {"flowtop: note: $D/nul/tcp.conf:1: bad service name \"ht\\x00tp\" (one word of "
          "printable characters expected)"}},
        {"FilterUnbalanced",
         k_batch + "--filter '(tcp'",
         2,
         {"flowtop: --filter: missing ')' for the '(' here (at column 1)", k_try},
         true},
        {"FilterHostNotAnAddress",
         k_batch + "--filter host:999.1.1.1",
         2,
         {"flowtop: --filter: '999.1.1.1' is not an IPv4 or IPv6 address (at column 6)", k_try},
         true},
        {"FilterPortTooBig",
         k_batch + "--filter port:70000",
         2,
         {"flowtop: --filter: bad port or range '70000' (0-65535, low-high) (at column 6)", k_try},
         true},
        {"FilterPortNegative",
         k_batch + "--filter port:-1",
         2,
         {"flowtop: --filter: bad port or range '-1' (0-65535, low-high) (at column 6)", k_try},
         true},
        {"FilterStateUnknown",
         k_batch + "--filter state:bogus",
         2,
         {"flowtop: --filter: state: takes open, closed or a TCP state (none syn_sent syn_recv "
          "established fin_wait close_wait last_ack time_wait close syn_sent2) (at column 7)",
          k_try},
         true},
        {"FilterProtoUnknown",
         k_batch + "--filter proto:999",
         2,
         {"flowtop: --filter: proto: takes a protocol name (tcp udp icmp icmpv6 sctp dccp "
          "udplite gre) or a number 0-255 (at column 7)",
          k_try},
         true},
        {"FilterNatUnknown",
         k_batch + "--filter nat:masquerade",
         2,
         {"flowtop: --filter: nat: takes snat, dnat, both or none (at column 5)", k_try},
         true},
        {"FilterStatusUnknown",
         k_batch + "--filter status:established",
         2,
         {"flowtop: --filter: status: takes unreplied, replied, assured or offload (at column 8)",
          k_try},
         true},
        {"DeleteMatchingEmpty",
         k_batch + "--delete-matching ' '",
         2,
         {"flowtop: --delete-matching needs an expression (to match every flow, say so: "
          "--delete-matching 'state:open or state:closed')",
          k_try},
         true},
        {"YesWithoutDeleteMatching",
         k_batch + "--yes",
         2,
         {"flowtop: --yes goes with --delete-matching EXPR", k_try},
         true},
        {"FilterTenThousandParentheses",
         k_batch + "--filter \"$(cat $D/parens)\"",
         2,
         {"flowtop: --filter: " + k_deep + " (at column 101)", k_try},
         true},
        {"FilterThirtyTwoThousandNots",
         k_batch + "--filter \"$(cat $D/nots)\"",
         2,
         {"flowtop: --filter: " + k_deep + " (at column 401)", k_try},
         true},
        // 20,000 terms (80 KB) are a flat list: they work. (A 1 MB expression cannot reach
        // flowtop through argv, whose strings the kernel caps at 128 KiB; from the prompt it
        // is "longer than 262144 characters", tested in the unit suite.)
        {"FilterTwentyThousandTermsWork", k_batch + "-G --filter \"$(cat $D/terms)\"", 0, {}},
        {"StdoutDevFull",
         k_batch + "-G",
         1,
         {"flowtop: cannot write the output: No space left on device"},
         false,
         "",
         ">/dev/full"},
        {"StdoutClosed",
         k_batch + "-G",
         1,
         {"flowtop: cannot write the output: standard output is closed"},
         true,
         "",
         ">&-"},
        {"FileSizeLimitSigxfsz",
         "-o json -c 100000 -t 0.1 -n -G",
         128 + SIGXFSZ,
         {},
         false,
         "ulimit -f 1;"},
        {"NotRoot",
         k_batch + "-G",
         1,
         // The user's flowtoprc is looked for under $HOME first: a home closed to nobody (as
         // root's is), whatever HOME the tests were started with.
         {"flowtop: warning: cannot read $D/closed-home/.config/flowtop/flowtoprc: Permission "
          "denied",
          "flowtop: needs root (CAP_NET_ADMIN) to read the kernel's connection tracking table "
          "and to turn on byte accounting: run it with sudo, e.g. 'sudo flowtop', or give a copy "
          "of it that capability (setcap, see CAPABILITIES in flowtop(8))"},
         true,
         "unset XDG_CONFIG_HOME SUDO_USER; HOME=$D/closed-home",
         "",
         "setpriv --reuid=65534 --regid=65534 --clear-groups"},
        // Conntrack netlink refused for real: in a user namespace of its own (a rootless
        // container) flowtop holds every capability, but not over the network namespace, which
        // the outer user namespace owns; the kernel answers EPERM.
        {"ConntrackNetlinkUnavailable",
         k_batch + "-G",
         1,
         {"flowtop: the kernel refused conntrack netlink: flowtop runs in a user namespace that "
          "does not own its network namespace (a rootless container, unshare --user), so its "
          "capabilities do not count there; run it as root in the namespace that owns the "
          "network (on the host: sudo flowtop, or --netns NAME)"},
         true,
         "",
         "",
         "unshare --user --map-root-user"},
        {"ProcSysReadOnly",
         k_batch + "-G",
         0,
         {"flowtop: warning: net.netfilter.nf_conntrack_acct is off and cannot be changed "
          "(Read-only file system); flowtop runs without it",
          "flowtop: warning: net.netfilter.nf_conntrack_timestamp is off and cannot be changed "
          "(Read-only file system); flowtop runs without it"},
         false,
         "",
         "",
         "unshare -m --propagation private sh -c 'mount --bind /proc/sys /proc/sys && "
         "mount -o remount,bind,ro /proc/sys && exec \"$0\" \"$@\"'"},
        {"TermDumb",
         "-n -G",
         1,
         {"flowtop: terminal type 'dumb' (TERM) cannot move the cursor, which the live view "
          "needs; use --batch, or set TERM to your terminal's type"},
         true,
         "TERM=dumb",
         "",
         "",
         true},
        {"TermUnknown",
         "-n -G",
         1,
         {"flowtop: cannot use terminal type 'nosuchterm' (TERM): unknown here, or it cannot "
          "move the cursor; set TERM to your terminal's type, or use --batch"},
         true,
         "TERM=nosuchterm",
         "",
         "",
         true},
        {"TermUnset",
         "-n -G",
         1,
         {"flowtop: TERM is not set: the live view needs a terminal type (e.g. "
          "TERM=xterm-256color), or use --batch"},
         true,
         "env -u TERM",
         "",
         "",
         true},
        {"Terminal20x5",
         "-n -G -t 0.2",
         0,
         {},
         true,
         "",
         "",
         "",
         true,
         20,
         5,
         "terminal too small",
         "q"},
        {"StdinAtEofInTheLiveView", "-n -G -t 0.2", 0, {}, true, "", "</dev/null", "", true},
        {"StdinClosedInTheLiveView", "-n -G -t 0.2", 0, {}, true, "", "<&-", "", true},
    };
}

class BadInput : public ::testing::TestWithParam<Row> {
  protected:
    static void SetUpTestSuite() { fixtures_ = new std::string(make_fixtures()); }
    static void TearDownTestSuite() {
        std::error_code ec;
        fs::remove_all(*fixtures_, ec);
        delete fixtures_;
        fixtures_ = nullptr;
    }
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
        ns.set_sysctl(k_acct, "0");
        ns.set_sysctl(k_ts, "0");
        run_dir = *fixtures_ + "/run-" + GetParam().name;
        fs::create_directories(run_dir);
    }
    void TearDown() override {
        if (!tmux.empty()) sh(tmux + " kill-server 2>/dev/null");
    }
    std::string expand(std::string s) const {
        for (std::size_t at; (at = s.find("$D")) != std::string::npos;)
            s.replace(at, 2, *fixtures_);
        return s;
    }

    static std::string* fixtures_;
    Namespace ns{"bad"};
    std::string run_dir;
    std::string tmux;
};
std::string* BadInput::fixtures_ = nullptr;

TEST_P(BadInput, ClearMessageExitStatusAndNothingLeftChanged) {
    const Row& row = GetParam();
    const std::string err = run_dir + "/err", rc = run_dir + "/rc";
    const std::string stdout_to =
        row.tty || row.redirect.find('>') != std::string::npos ? "" : " >" + run_dir + "/out";
    // A row run as another user runs a copy that user may execute, wherever the checkout is.
    std::optional<ExecutableCopy> copy;
    if (row.in_ns.find("--reuid") != std::string::npos) copy.emplace();
    const std::string binary = copy ? copy->path() : FLOWTOP_BINARY;
    const std::string command = expand(row.pre) + " " + ns.exec(row.in_ns + " " + binary) + " " +
                                expand(row.args) + " " + row.redirect + stdout_to + " 2>" + err;
    int status = -1;
    if (!row.tty) {
        write_file(run_dir + "/run.sh", "cd " + run_dir + "; " + command + "\n");
        status = sh("timeout -k 2 20 sh " + run_dir + "/run.sh");
        ASSERT_NE(status, 124) << "flowtop hung: " << command;
    } else {
        tmux = "tmux -L ftbad" + std::to_string(getpid()) + row.name;
        // "after" appears whole (renamed into place): the loop below waits for it to exist.
        write_file(run_dir + "/run.sh", "stty -g >" + run_dir + "/before; " + command +
                                            "; echo $? >" + rc + "; stty -g >" + run_dir +
                                            "/after.part; mv " + run_dir + "/after.part " +
                                            run_dir + "/after; sleep 60\n");
        must(tmux + " new-session -d -s row -x " + std::to_string(row.width) + " -y " +
             std::to_string(row.height) + " 'sh " + run_dir + "/run.sh'");
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        bool sent = row.keys.empty();
        std::string screen;
        while (std::chrono::steady_clock::now() < deadline && !fs::exists(run_dir + "/after")) {
            if (!sent) {
                sh(tmux + " capture-pane -p -t row", &screen);
                if (screen.find(row.wait_screen) != std::string::npos) {
                    must(tmux + " send-keys -t row " + row.keys);
                    sent = true;
                }
            }
            std::this_thread::sleep_for(100ms);
        }
        ASSERT_TRUE(fs::exists(run_dir + "/after"))
            << "flowtop did not end by itself: " << command << "\nscreen:\n"
            << screen;
        ASSERT_TRUE(sent) << "never showed '" << row.wait_screen << "':\n" << screen;
        status = std::stoi(read_file(rc));
        EXPECT_EQ(read_file(run_dir + "/before"), read_file(run_dir + "/after"))
            << "terminal modes changed";
    }
    const std::string text = read_file(err);
    EXPECT_EQ(status, row.status) << command << "\nstderr:\n" << text;
    const auto got = lines_of(text);
    for (const auto& want : row.lines) {
        const std::string line = expand(want);
        EXPECT_NE(std::find(got.begin(), got.end(), line), got.end()) << "missing line:\n"
                                                                      << line << "\nstderr:\n"
                                                                      << text;
    }
    if (row.exact) {
        std::vector<std::string> want;
        for (const auto& l : row.lines) want.push_back(expand(l));
        EXPECT_EQ(got, want) << text;
    }
    for (const char* crash : {"Sanitizer", "terminate called", "Segmentation", "core dumped"})
        EXPECT_EQ(text.find(crash), std::string::npos) << text;
    EXPECT_EQ(ns.sysctl(k_acct), "0") << "nf_conntrack_acct left changed";
    EXPECT_EQ(ns.sysctl(k_ts), "0") << "nf_conntrack_timestamp left changed";
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInput, ::testing::ValuesIn(catalogue()),
                         [](const auto& row) { return std::string(row.param.name); });

}  // namespace

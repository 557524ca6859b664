// Output that cannot be turned against its reader: an unprivileged process names itself with
// terminal escapes (prctl PR_SET_NAME) and carries escapes, a C1 CSI and a right-to-left
// override in its arguments, then holds a TCP connection. flowtop, run by root, shows it in
// every output format; none may carry a control byte, and each shows the visible escapes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace flowtop::test;

namespace {

const std::string k_name = "\x1b[2J\x1b]0;PWN\x07";  // clear screen, retitle the window
const std::string k_name_shown = "\\x1b[2J\\x1b]0;PWN\\x07";
const std::string k_arg_osc = "\x1b]0;ARG\x07";
const std::string k_arg_c1 =
    "\xc2\x9b"
    "31m";  // 8-bit CSI: red
const std::string k_arg_rlo =
    "\xe2\x80\xae"
    "gpj.exe";  // shows as "exe.jpg"

// A process of the test, killed (with its group) on destruction.
struct Child {
    explicit Child(const std::vector<std::string>& argv) {
        pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execvp(args[0], args.data());
            _exit(127);
        }
    }
    ~Child() {
        if (pid > 0) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
    pid_t pid = -1;
};

// Control bytes that a terminal acts on: C0 (but newline between records), DEL, the C1 range
// as UTF-8, the bidirectional overrides.
std::string first_control(const std::string& out) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto c = static_cast<unsigned char>(out[i]);
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            return "byte " + std::to_string(c) + " at " + std::to_string(i);
        if (c == 0xc2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(out[i + 1]) <= 0x9f)
            return "C1 control at " + std::to_string(i);
        if (out.compare(i, 3, "\xe2\x80\xae") == 0) return "RLO at " + std::to_string(i);
    }
    return "";
}

class Escapes : public ::testing::Test {
  protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
        // The system's python: the unprivileged user cannot reach a per-user one in PATH.
        if (sh("command -v /usr/bin/python3 setpriv tmux >/dev/null") != 0)
            GTEST_SKIP() << "needs /usr/bin/python3, setpriv, tmux";
        server = std::make_unique<Child>(std::vector<std::string>{
            "ip", "netns", "exec", net.b.name(), "/usr/bin/python3", "-c",
            "import socket,time\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('198.51.100.2', 7777)); s.listen(4)\n"
            "c,_=s.accept(); time.sleep(120)\n"});
        std::this_thread::sleep_for(300ms);  // the listener binds
        client = std::make_unique<Child>(std::vector<std::string>{
            "ip", "netns", "exec", net.a.name(), "setpriv", "--reuid=65534", "--regid=65534",
            "--clear-groups", "/usr/bin/python3", "-c",
            "import ctypes,socket,sys,time\n"
            "ctypes.CDLL(None).prctl(15, sys.argv[1].encode('utf-8', 'surrogateescape'), 0, 0, 0)\n"
            "s=None\n"
            "for i in range(50):\n"
            "    try:\n"
            "        s=socket.create_connection(('198.51.100.2', 7777)); break\n"
            "    except OSError: time.sleep(0.1)\n"
            "s.sendall(b'x'*1000); time.sleep(120)\n",
            k_name, k_arg_osc, k_arg_c1, k_arg_rlo});
    }
    // flowtop's raw stdout for a few frames, once the flow has its process.
    std::string run(const std::string& format) {
        std::string out;
        for (int attempt = 0; attempt < 5; ++attempt) {
            sh("timeout -k 2 20 " + net.a.exec(std::string(FLOWTOP_BINARY) + " -o " + format +
                                               " -c 4 -t 0.3 -n -G 2>/dev/null"),
               &out);
            if (format == "table" || out.find("PWN") != std::string::npos) break;
            std::this_thread::sleep_for(300ms);
        }
        return out;
    }
    TestNet net;
    std::unique_ptr<Child> server, client;
};

}  // namespace

TEST_F(Escapes, JsonShowsVisibleEscapesAndNoControlBytes) {
    const std::string out = run("json");
    EXPECT_EQ(first_control(out), "") << out;
    bool found = false;
    std::stringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        const auto j = Json::parse(line);
        if (j["type"] != "flow" || j["dport"] != 7777 || !j["comm"].is_string()) continue;
        found = true;
        EXPECT_EQ(j["comm"], k_name_shown);
        EXPECT_EQ(j["user"], "nobody");
        const std::string cmdline = j["cmdline"];
        EXPECT_NE(cmdline.find("\\x1b]0;ARG\\x07"), std::string::npos) << cmdline;
        EXPECT_NE(cmdline.find("\\u009b31m"), std::string::npos) << cmdline;
        EXPECT_NE(cmdline.find("\\u202egpj.exe"), std::string::npos) << cmdline;
    }
    EXPECT_TRUE(found) << "no attributed flow to port 7777:\n" << out;
}

TEST_F(Escapes, CsvAndTableCarryNoControlBytes) {
    const std::string csv = run("csv");
    EXPECT_EQ(first_control(csv), "") << csv;
    EXPECT_NE(csv.find(k_name_shown), std::string::npos) << csv;
    EXPECT_NE(csv.find("\\x1b]0;ARG\\x07"), std::string::npos) << csv;
    // Every row has as many fields as the header: nothing cut a row.
    std::stringstream lines(csv);
    std::string header;
    std::getline(lines, header);
    const auto commas = std::count(header.begin(), header.end(), ',');
    for (std::string line; std::getline(lines, line);) {
        if (line.find("7777") == std::string::npos || line.find('"') != std::string::npos) continue;
        EXPECT_EQ(std::count(line.begin(), line.end(), ','), commas) << line;
    }
    const std::string table = run("table");
    EXPECT_EQ(first_control(table), "") << table;
    EXPECT_NE(table.find("198.51.100.2:7777"), std::string::npos) << table;
}

TEST_F(Escapes, LiveViewNeitherRetitlesNorClearsTheReadersTerminal) {
    const std::string tmux = "tmux -L ftesc" + std::to_string(getpid());
    must(tmux + " new-session -d -s e -x 160 -y 30 '" +
         net.a.exec(std::string(FLOWTOP_BINARY) + " -n -G -t 0.3") + "; sleep 60'");
    std::string screen;
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
        sh(tmux + " capture-pane -p -t e", &screen);
        if (screen.find("\\x1b[2J") != std::string::npos) break;
        std::this_thread::sleep_for(100ms);
    }
    std::string title;
    sh(tmux + " display -p -t e '#{pane_title}'", &title);
    sh(tmux + " send-keys -t e q");
    std::this_thread::sleep_for(300ms);
    sh(tmux + " kill-server 2>/dev/null");
    EXPECT_NE(screen.find("\\x1b[2J"), std::string::npos)
        << "the process name is not shown as visible escapes:\n"
        << screen;
    EXPECT_EQ(title.find("PWN"), std::string::npos) << "the window title was changed: " << title;
    EXPECT_NE(screen.find("DESTINATION"), std::string::npos) << "the screen was cleared";
}

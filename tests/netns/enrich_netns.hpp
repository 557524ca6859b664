#pragma once
// A small namespace helper for the enrichment tests (prefix "fte"): a client namespace and a
// server namespace joined by a veth pair with documentation addresses, conntrack active in the
// client (an nft "ct state" rule). Everything it makes is removed in the destructor.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fte {

// Runs a shell command; throws with the command when it fails.
inline void sh(const std::string& cmd) {
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
}

// Runs a command and returns its stdout.
inline std::string capture(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("popen failed: " + cmd);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

class NetnsPair {
  public:
    // client 198.51.100.1 / 2001:db8:1::1, server 198.51.100.2 / 2001:db8:1::2
    explicit NetnsPair(const std::string& tag)
        : client("fte" + tag + "c" + std::to_string(::getpid())),
          server("fte" + tag + "s" + std::to_string(::getpid())) {
        try {
            sh("ip netns add " + client);
            made_client_ = true;
            sh("ip netns add " + server);
            made_server_ = true;
            sh("ip -n " + client + " link add v0 type veth peer name v1 netns " + server);
            sh("ip -n " + client + " addr add 198.51.100.1/24 dev v0");
            sh("ip -n " + server + " addr add 198.51.100.2/24 dev v1");
            sh("ip -n " + client + " addr add 2001:db8:1::1/64 dev v0 nodad");
            sh("ip -n " + server + " addr add 2001:db8:1::2/64 dev v1 nodad");
            for (const auto& [ns, dev] : {std::pair{client, "v0"}, std::pair{server, "v1"}}) {
                sh("ip -n " + ns + " link set " + dev + " up");
                sh("ip -n " + ns + " link set lo up");
            }
            sh("ip netns exec " + client +
               " nft 'add table inet fte; add chain inet fte out { type filter hook output "
               "priority 0; }; add rule inet fte out ct state new,established accept'");
        } catch (...) {
            cleanup();
            throw;
        }
    }
    ~NetnsPair() { cleanup(); }
    NetnsPair(const NetnsPair&) = delete;
    NetnsPair& operator=(const NetnsPair&) = delete;

    std::string in_client(const std::string& cmd) const {
        return "ip netns exec " + client + " " + cmd;
    }
    std::string in_server(const std::string& cmd) const {
        return "ip netns exec " + server + " " + cmd;
    }

    // /etc/netns/<client>/resolv.conf: `ip netns exec` bind-mounts it over /etc/resolv.conf.
    void set_resolver(const std::string& nameserver) {
        std::filesystem::create_directories("/etc/netns/" + client);
        made_etc_ = true;
        sh("printf 'nameserver " + nameserver +
           "\\noptions timeout:1 attempts:1\\n' > /etc/netns/" + client + "/resolv.conf");
    }

    const std::string client;
    const std::string server;

  private:
    void cleanup() noexcept {
        // Processes started in the namespaces (dnsmasq, flowtop) go first.
        for (const auto& ns : {client, server}) {
            std::string cmd =
                "pids=$(ip netns pids " + ns + " 2>/dev/null); [ -z \"$pids\" ] || kill $pids";
            std::system(cmd.c_str());
        }
        if (made_server_) std::system(("ip netns del " + server + " 2>/dev/null").c_str());
        if (made_client_) std::system(("ip netns del " + client + " 2>/dev/null").c_str());
        if (made_etc_) {
            std::error_code ec;
            std::filesystem::remove_all("/etc/netns/" + client, ec);
        }
    }
    bool made_client_ = false;
    bool made_server_ = false;
    bool made_etc_ = false;
};

}  // namespace fte

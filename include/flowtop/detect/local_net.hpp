#pragma once
// Which addresses are this host's, and which are its LAN: the detectors' notion of inbound,
// outbound and "leaves the site". The answers are util's LocalAddresses (contains, is_lan), the
// same set the attributor, the filter language and the Clients tab use; the interface is here
// so tests can hand the detectors a fixed set.
#include <cstdint>
#include <vector>

#include "flowtop/util/addr.hpp"
#include "flowtop/util/local_addresses.hpp"

namespace flowtop::detect {

class LocalNet {
  public:
    virtual ~LocalNet() = default;
    // An address of this host.
    virtual bool is_local(const Addr& a, Family f) const noexcept = 0;
    // This host's own or on its LAN (LocalAddresses::is_lan): a LAN client.
    virtual bool is_inside(const Addr& a, Family f) const noexcept = 0;
    // Called every tick with CLOCK_REALTIME; an implementation may re-read its sources.
    virtual void refresh(std::uint64_t /*now_ns*/) {}
};

// A fixed set (tests, and the base of the namespace's set).
class StaticLocalNet : public LocalNet {
  public:
    StaticLocalNet() = default;
    explicit StaticLocalNet(LocalAddresses local) : local_(std::move(local)) {}
    // This host's addresses (each network's address) and exactly these LAN networks.
    StaticLocalNet(const std::vector<Network>& own, std::vector<Network> lans);
    bool is_local(const Addr& a, Family f) const noexcept override { return local_.contains(f, a); }
    bool is_inside(const Addr& a, Family f) const noexcept override { return local_.is_lan(f, a); }

  protected:
    LocalAddresses local_;
};

// The addresses of the namespace it is made in (LocalAddresses::of_current_namespace, with
// `lans` from --lan), re-read when an AddressWatch says they or the routes changed.
class NamespaceLocalNet final : public StaticLocalNet {
  public:
    explicit NamespaceLocalNet(std::vector<Network> lans = {});
    void refresh(std::uint64_t now_ns) override;

  private:
    std::vector<Network> lans_;
    AddressWatch watch_;
};

}  // namespace flowtop::detect

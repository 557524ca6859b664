#include "flowtop/detect/local_net.hpp"

#include <utility>

namespace flowtop::detect {

StaticLocalNet::StaticLocalNet(const std::vector<Network>& own, std::vector<Network> lans) {
    for (const auto& n : own) local_.add(n.family, n.addr);
    local_.set_lans(std::move(lans));
}

NamespaceLocalNet::NamespaceLocalNet(std::vector<Network> lans)
    : StaticLocalNet(LocalAddresses::of_current_namespace(lans)), lans_(std::move(lans)) {}

void NamespaceLocalNet::refresh(std::uint64_t now_ns) {
    if (watch_.changed(now_ns)) local_ = LocalAddresses::of_current_namespace(lans_);
}

}  // namespace flowtop::detect

// libFuzzer target: the DHCP lease parser (dnsmasq, ISC dhcpd, systemd-networkd). A lease's
// host name is chosen by the client: whatever the file holds, every name kept is non-empty, at
// most a DNS label long and clean text (nothing a terminal would act on).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "flowtop/enrich/dhcp_leases.hpp"
#include "flowtop/util/text.hpp"

using namespace flowtop;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const auto& lease : enrich::parse_leases(text)) {
        if (lease.name.empty() || lease.name.size() > enrich::k_lease_name_max ||
            !is_clean(lease.name)) {
            std::fprintf(stderr, "dhcp_leases_fuzz: a name that is empty, long or unclean\n");
            std::abort();
        }
    }
    return 0;
}

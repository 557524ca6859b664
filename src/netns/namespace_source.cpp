#include "flowtop/netns/namespace_source.hpp"

#include <exception>

namespace flowtop::netns {

NamespaceSource::NamespaceSource(table::Collector& collector, const std::string& label,
                                 std::span<NamespaceUser* const> users)
    : collector_(collector), guard_(std::make_unique<SysctlGuard>(ct::guarded_sysctls())) {
    notes_ = guard_->warnings();
    io_ = ct::open_kernel_conntrack();
    source_ = collector_.add_source(*io_, label);
    added_ = true;
    for (NamespaceUser* user : users) {
        try {
            user->add_namespace(source_);
            users_.push_back(user);
        } catch (const std::exception& e) {
            notes_.emplace_back(e.what());  // the user's message says what is missing
        }
    }
}

NamespaceSource::~NamespaceSource() {
    for (auto it = users_.rbegin(); it != users_.rend(); ++it) (*it)->remove_namespace(source_);
    // It may still live, held by something flowtop cannot see: its flows end in the next
    // frame and its settings come back when guard_ goes.
    if (added_) collector_.remove_source(source_);
}

}  // namespace flowtop::netns

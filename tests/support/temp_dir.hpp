#pragma once
// A fresh directory for one test, removed with everything in it on destruction.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace flowtop::test {

class TempDir {
  public:
    // Made under `parent` (default: the system's temporary directory), named prefix-XXXXXX.
    explicit TempDir(const std::string& prefix = "flowtop-test", const std::string& parent = {}) {
        const std::filesystem::path base =
            parent.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(parent);
        std::string tmpl = (base / (prefix + "-XXXXXX")).string();
        if (!mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed under " + base.string());
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    // Writes `text` to NAME in the directory; returns its path.
    std::string write(const std::string& name, const std::string& text) const {
        const std::string file = path + "/" + name;
        std::ofstream(file) << text;
        return file;
    }

    std::string path;
};

}  // namespace flowtop::test

#include "isolated_host.hpp"

#include <csignal>
#include <filesystem>
#include <gtest/gtest.h>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace promiscd::testing {

namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::set<std::string> listing(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        out.insert(e.path().filename().string());
    return out;
}

} // namespace

std::string mount_namespace_of(pid_t pid) {
    std::error_code ec;
    auto target = fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/mnt", ec).string();
    return ec ? std::string() : target;
}

bool process_gone(pid_t pid) {
    auto status = read_file("/proc/" + std::to_string(pid) + "/status");
    return status.empty() || status.find("State:\tZ") != std::string::npos;
}

std::map<pid_t, std::string> processes_in_mount_namespace(const std::string& ns) {
    std::map<pid_t, std::string> out;
    if (ns.empty())
        return out;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const pid_t pid = std::stoi(name);
        if (mount_namespace_of(pid) != ns || process_gone(pid))
            continue;
        auto comm = read_file("/proc/" + name + "/comm");
        if (!comm.empty())
            comm.pop_back();
        out[pid] = comm;
    }
    return out;
}

IsolatedHost::IsolatedHost(Options opts, const std::string& command, const std::string& cwd)
    : opts_(std::move(opts)) {
    std::string script = "set -e\n"
                         "mount -t tmpfs -o mode=0755 tmpfs /run\n"
                         // overlayfs wants its upper and work directories on one
                         // local file system: a tmpfs of its own.
                         "mount -t tmpfs tmpfs " +
                         quoted(stage_ / "scratch") + "\n";
    fs::create_directories(stage_ / "scratch");
    int n = 0;
    for (const auto& dir : opts_.writable_copies) {
        host_listings_[dir] = listing(dir);
        const std::string copy = stage_ / ("copy" + std::to_string(n++));
        fs::copy(dir, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
        script += "mount --bind " + quoted(copy) + " " + quoted(dir) + "\n";
    }
    if (!opts_.etc_files.empty()) {
        const std::string up = stage_ / "scratch/etc-upper", work = stage_ / "scratch/etc-work";
        script += "mkdir " + quoted(up) + " " + quoted(work) + "\n" +
                  "mount -t overlay overlay -o " +
                  quoted("lowerdir=/etc,upperdir=" + up + ",workdir=" + work) + " /etc\n";
        for (const auto& [path, content] : opts_.etc_files) {
            const std::string staged = stage_ / ("etc" + std::to_string(n++));
            write_file(staged, content);
            script += "mkdir -p " + quoted(fs::path(path).parent_path()) + "\ncp " +
                      quoted(staged) + " " + quoted(path) + "\n";
        }
    }
    for (const auto& [from, onto] : opts_.binds)
        script += "mount --bind " + quoted(from) + " " + quoted(onto) + "\n";
    script += opts_.setup + "\necho 'itest: isolated'\ncd " + quoted(cwd) +
              "\n"
              // bash runs a simple command line in its own place, so only the
              // command is in the foreground process group, as from a terminal.
              "exec bash -c \"$1\"\n";
    write_file(stage_ / "isolate.sh", script);

    std::vector<std::string> argv = {
        "unshare", "-m", "--propagation", "private", "/bin/sh", stage_ / "isolate.sh", command};
    if (opts_.netns)
        argv = opts_.netns->wrap(argv);
    Process::Options po;
    po.log_path = stage_ / "output.log";
    process_ = std::make_unique<Process>(argv, po);
    if (process_->wait_for_output("itest: isolated", 30s) == std::string::npos)
        throw std::runtime_error("the isolated host was not made:\n" + process_->log());
    mnt_ns_ = mount_namespace_of(process_->pid());
}

IsolatedHost::~IsolatedHost() {
    if (::testing::Test::HasFailure())
        std::cerr << "===== output of the isolated command =====\n" << process_->log();
    for (int round = 0; round < 50 && !processes().empty(); ++round) {
        for (const auto& [pid, comm] : processes())
            ::kill(pid, SIGKILL);
        std::this_thread::sleep_for(100ms);
    }
    process_.reset();
}

std::vector<std::string> IsolatedHost::inside(const std::map<std::string, std::string>& env,
                                              std::vector<std::string> argv) const {
    std::vector<std::string> out = {"nsenter", "--target", std::to_string(process_->pid()),
                                    "--mount"};
    if (opts_.netns)
        out.push_back("--net");
    out.insert(out.end(), {"--", "env"});
    for (const auto& [k, v] : env)
        out.push_back(k + "=" + v);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::map<pid_t, std::string> IsolatedHost::processes() const {
    return processes_in_mount_namespace(mnt_ns_);
}

void IsolatedHost::expect_host_untouched() const {
    for (const auto& [dir, before] : host_listings_)
        EXPECT_EQ(listing(dir), before) << dir;
    const auto mounts = read_file("/proc/self/mountinfo");
    EXPECT_EQ(mounts.find(stage_.path()), std::string::npos) << mounts;
}

} // namespace promiscd::testing

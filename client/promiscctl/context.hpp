// What every promiscctl command shares: the global options, the exit codes,
// the output style, and the connection to promiscd (opened on first use).
#pragma once

#include "output.hpp"
#include "polkit_agent.hpp"

#include <promisc/promisc.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace promiscd::ctl {

// The exit codes promised in --help and promiscctl(1).
enum Exit : int {
    kSuccess = 0,
    kFailed = 1,        // the operation failed
    kUsage = 2,         // bad command line
    kNotAuthorized = 3, // polkit (or the lease's owner) said no
    kUnreachable = 4,   // no system bus, promiscd not on it, or no varlink socket
};

// A command line that parses but makes no sense (exit 2).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class TransportKind { Auto, DBus, Varlink };

struct Globals {
    JsonMode json = JsonMode::Off;
    bool legend = true;
    bool pager = true;
    bool quiet = false;
    bool ask_password = true;
    TransportKind transport = TransportKind::Auto;
    std::string varlink_socket = "/run/promiscd/io.promiscd";
};

class Context {
public:
    explicit Context(Globals globals);

    const Globals& globals() const noexcept { return globals_; }
    // Colours for standard output, decided before a pager takes it over.
    const Style& style() const noexcept { return style_; }
    // Colours for standard error (the progress line, warnings).
    const Style& err_style() const noexcept { return err_style_; }
    // The connection to promiscd, over the transport --transport chose
    // (auto: decided on first use). Throws promisc::DaemonUnreachableError.
    promisc::Client& client();
    // A polkit text agent for a request that may need authorization, kept
    // for as long as the returned object lives: on a terminal, over D-Bus
    // (the varlink interface has no way to allow interactive authorization).
    PolkitAgent polkit_agent();
    // Calls may wait for a polkit agent's question to be answered: asked
    // for (--no-ask-password not given) and someone is at the terminal.
    bool interactive() const;
    // Whether the transport in use (once decided) is varlink.
    bool using_varlink() const noexcept { return resolved_ == TransportKind::Varlink; }

private:
    TransportKind resolved();
    promisc::ClientOptions options(TransportKind kind) const;

    Globals globals_;
    Style style_;
    Style err_style_;
    std::optional<promisc::Client> client_;
    std::optional<TransportKind> resolved_;
};

} // namespace promiscd::ctl

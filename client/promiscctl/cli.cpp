#include "cli.hpp"

#include "bus_probe.hpp"
#include "commands.hpp"
#include "config.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace promiscd::ctl {

namespace {

const char* const kFooter = R"(With no command, 'status' runs. --json works with status, leases and
monitor.

Exit status:
  0  success
  1  the operation failed (the daemon's message says why)
  2  usage error
  3  not authorized (by polkit, or not the lease's owner)
  4  promiscd not reachable (no system bus, promiscd not on it, or no
     varlink socket)
'run' exits with the status of its command.

See promiscctl(1).)";

// Reports e on stderr with a hint for what a person can do; returns the
// exit code of its class.
int report(const promisc::Error& e, const Globals& g, bool varlink) {
    using ErrorKind = promisc::ErrorCode;
    std::cerr << "promiscctl: " << e.what() << '\n';
    switch (e.code()) {
    case ErrorKind::AccessDenied:
        std::cerr << "hint: polkit did not authorize this. Leases and captures need the actions "
                     "org.promiscd.promisc.acquire\n"
                     "      and org.promiscd.capture (the example rules grant them to group "
                     "'promisc': usermod -aG promisc USER);\n"
                     "      revoking others' leases and setting policies need "
                     "org.promiscd.manage (an administrator).\n";
        return kNotAuthorized;
    case ErrorKind::InteractiveAuthorizationRequired:
        std::cerr << "hint: polkit wants a password (yours or an administrator's, as its rules "
                     "say). On a terminal promiscctl\n";
        if (varlink)
            std::cerr << "      asks for it over D-Bus only (--transport=dbus): the varlink "
                         "interface cannot let polkit ask.\n";
        else
            std::cerr << "      asks for it through pkttyagent, unless --no-ask-password is "
                         "given.\n";
        std::cerr << "      Or run it as root, or join group 'promisc' for leases and "
                     "captures.\n";
        return kNotAuthorized;
    case ErrorKind::NotOwner:
        std::cerr << "hint: only the process holding a lease may release it; anyone else needs "
                     "polkit's org.promiscd.manage\n"
                     "      (run as root, or ask an administrator).\n";
        return kNotAuthorized;
    case ErrorKind::LimitsExceeded:
        std::cerr << "hint: promiscd has too many requests in flight; try again in a moment.\n";
        return kFailed;
    case ErrorKind::DaemonUnreachable: {
        if (varlink) {
            std::cerr << "hint: is promiscd.socket listening on " << g.varlink_socket
                      << " ('systemctl status promiscd.socket')?\n"
                         "      Choose the socket with --varlink-socket=PATH (or "
                         "PROMISCD_VARLINK_SOCKET), or try --transport=dbus.\n";
            return kUnreachable;
        }
        const char* address = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
        std::cerr << "hint: is promiscd running ('systemctl status promiscd'), and is the system "
                     "bus up"
                  << (address ? std::string(" at ") + address : std::string()) << "?\n";
        if (g.transport == TransportKind::Auto)
            std::cerr << "      Nothing listens on promiscd's varlink socket " << g.varlink_socket
                      << " either (--varlink-socket=PATH).\n";
        return kUnreachable;
    }
    default:
        return kFailed;
    }
}

// CLI11 shows "--json" as "--json{short} :{short,pretty}"; people read
// "--json[=short|pretty]" as systemd's tools write it.
class HelpFormatter : public CLI::Formatter {
public:
    std::string make_option_name(const CLI::Option* opt, bool positional) const override {
        if (opt->check_lname("json"))
            return "--json[=short|pretty]";
        return CLI::Formatter::make_option_name(opt, positional);
    }
    std::string make_option_opts(const CLI::Option* opt) const override {
        if (opt->check_lname("json"))
            return {};
        return CLI::Formatter::make_option_opts(opt);
    }
};

// A whole decimal number, as the options that take counts want it.
bool parse_number(const std::string& text, std::uint64_t& out) {
    if (text.empty() || text.size() > 19 ||
        text.find_first_not_of("0123456789") != std::string::npos)
        return false;
    out = std::stoull(text);
    return true;
}

int usage_error(const std::string& message) {
    std::cerr << "promiscctl: " << message << "\nTry 'promiscctl --help' for more information.\n";
    return kUsage;
}

} // namespace

Context::Context(Globals globals)
    : globals_(globals), style_(colour_wanted(STDOUT_FILENO)),
      err_style_(colour_wanted(STDERR_FILENO)) {}

TransportKind Context::resolved() {
    if (!resolved_) {
        resolved_ = globals_.transport;
        // auto: D-Bus when promiscd is there (or activatable), else the
        // varlink socket if something listens on it; when neither answers,
        // D-Bus, whose error says best what is missing.
        if (*resolved_ == TransportKind::Auto) {
            resolved_ = TransportKind::DBus;
            if (!dbus_available()) {
                try {
                    client_.emplace(options(TransportKind::Varlink));
                    resolved_ = TransportKind::Varlink;
                } catch (const promisc::Error&) {
                }
            }
        }
    }
    return *resolved_;
}

promisc::ClientOptions Context::options(TransportKind kind) const {
    promisc::ClientOptions o;
    o.transport =
        kind == TransportKind::Varlink ? promisc::Transport::Varlink : promisc::Transport::DBus;
    o.varlink_socket = globals_.varlink_socket;
    o.interactive = interactive();
    return o;
}

promisc::Client& Context::client() {
    const TransportKind kind = resolved();
    if (!client_)
        client_.emplace(options(kind));
    return *client_;
}

PolkitAgent Context::polkit_agent() {
    // Over varlink too the daemon asks polkit about this process, when
    // polkit is there to ask: on a host with a system bus.
    if (resolved() != TransportKind::DBus && (!interactive() || !polkit_available()))
        return {};
    return PolkitAgent::start_if_useful(globals_.ask_password);
}

bool Context::interactive() const {
    // Only someone at a terminal can answer a polkit agent's question.
    return globals_.ask_password && ::isatty(STDIN_FILENO) == 1;
}

int main(int argc, char** argv) {
    // A closed pipe is an error to handle (the capture stops, a listing
    // ends), not a reason to die silently with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"Control promiscd: promiscuous-mode leases, captures and events.", "promiscctl"};
    app.set_version_flag("--version", std::string("promiscctl ") + PROMISCD_VERSION,
                         "Print the version and exit");
    app.footer(kFooter);
    app.formatter(std::make_shared<HelpFormatter>());
    app.fallthrough();
    app.require_subcommand(0, 1);

    Globals g;
    std::string json;
    bool no_legend = false, no_pager = false, no_ask_password = false;
    // A flag, not an option: "--json" never takes the next word as its value
    // ("--json status"), only "--json=pretty" does.
    app.add_flag("--json{short}", json,
                 "Print JSON: short (one line, the default) or pretty (--json=pretty)")
        ->check(CLI::IsMember({"short", "pretty"}));
    app.add_flag("--no-legend", no_legend, "Print no column headers and no footer");
    app.add_flag("--no-pager", no_pager, "Do not pipe output into a pager");
    app.add_flag("-q,--quiet", g.quiet, "Print only errors (and what was asked for)");
    app.add_flag("--no-ask-password", no_ask_password,
                 "Do not let polkit ask for a password, even on a terminal");
    std::string transport = "auto";
    app.add_option("--transport", transport,
                   "How to reach promiscd: dbus, varlink, or auto (D-Bus when promiscd is on the "
                   "system bus or activatable there, else varlink)")
        ->type_name("TRANSPORT")
        ->check(CLI::IsMember({"dbus", "varlink", "auto"}));
    if (const char* env = std::getenv("PROMISCD_VARLINK_SOCKET"); env && *env)
        g.varlink_socket = env;
    app.add_option("--varlink-socket", g.varlink_socket,
                   "promiscd's varlink socket (default: $PROMISCD_VARLINK_SOCKET, else "
                   "/run/promiscd/io.promiscd)")
        ->type_name("PATH");

    auto* status_cmd =
        app.add_subcommand("status", "Show the links, or the given LINKs with their leases");
    std::vector<std::string> status_links;
    status_cmd->add_option("LINK", status_links, "Interface names");

    auto* leases_cmd = app.add_subcommand("leases", "List every lease");

    auto* hold_cmd = app.add_subcommand(
        "hold", "Hold a lease on LINK until Ctrl-C or SIGTERM, printing its state changes");
    HoldArgs hold_args;
    hold_cmd->add_option("LINK", hold_args.link, "Interface name")->required();
    hold_cmd->add_option("--ttl", hold_args.ttl, "End the lease after SEC seconds (0: no expiry)")
        ->type_name("SEC")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
                std::uint64_t n = 0;
                if (!parse_number(v, n) || n > (std::uint64_t{1} << 40))
                    return "SEC must be a number of seconds, 0 (no expiry) or more (got '" + v +
                           "')";
                return {};
            },
            "", "SEC"));
    hold_cmd->add_option("--reason", hold_args.reason, "Why, shown to administrators")
        ->type_name("TEXT");
    hold_cmd->add_flag("--wait", hold_args.wait,
                       "If LINK does not exist, wait for it (a pending lease)");
    const std::string netns_help =
        "LINK is in another network namespace: NAME (ip netns), PID (that process's, e.g. "
        "$(pidof …) of a container), or PATH to a namespace file";
    hold_cmd->add_option("--netns", hold_args.netns, netns_help)->type_name("NETNS");

    auto* run_cmd =
        app.add_subcommand("run", "Hold a lease on LINK while CMD runs; exit with CMD's status");
    RunArgs run_args;
    run_cmd->add_option("LINK", run_args.link, "Interface name")->required();
    run_cmd->add_option("--reason", run_args.reason, "Why, shown to administrators")
        ->type_name("TEXT");
    run_cmd->add_flag("--wait", run_args.wait,
                      "If LINK does not exist, wait for it (a pending lease)");
    run_cmd->add_option("--netns", run_args.netns, netns_help)->type_name("NETNS");
    run_cmd->add_option("CMD", run_args.command, "The command and its arguments, after --")
        ->required();
    run_cmd->prefix_command();

    auto* release_cmd = app.add_subcommand("release", "End a lease");
    std::string release_lease;
    release_cmd->add_option("LEASE", release_lease, "Lease id or object path")->required();

    auto* revoke_cmd =
        app.add_subcommand("revoke", "End someone else's lease, telling its owner why");
    std::string revoke_lease, revoke_reason;
    revoke_cmd->add_option("LEASE", revoke_lease, "Lease id or object path")->required();
    revoke_cmd->add_option("--reason", revoke_reason, "Why, for the log and the owner")
        ->type_name("TEXT");

    auto* policy_cmd = app.add_subcommand(
        "policy", "Choose what promiscd does when someone else clears the flag on LINK");
    std::string policy_link, policy_value;
    policy_cmd->add_option("LINK", policy_link, "Interface name")->required();
    policy_cmd->add_option("POLICY", policy_value, "enforce or yield")
        ->required()
        ->check(CLI::IsMember({"enforce", "yield"}));

    auto* capture_cmd = app.add_subcommand(
        "capture", "Capture frames on LINK into FILE or standard output, as tcpdump -w does");
    CaptureArgs cap_args;
    std::string cap_file, cap_interface;
    std::vector<std::string> cap_words;
    std::uint32_t cap_buffer_mib = 0;
    bool no_promisc = false;
    capture_cmd
        ->add_option("-i,--interface", cap_interface,
                     "The link to capture on (without -i: the first word)")
        ->type_name("LINK");
    capture_cmd
        ->add_option("WORDS", cap_words,
                     "[LINK] [FILTER...]: LINK unless -i gives it, then a pcap-filter expression "
                     "as tcpdump takes it: 'promiscctl capture -i eth0 tcp port 80'")
        ->type_name("");
    capture_cmd
        ->add_option("-f,--filter", cap_args.filter,
                     "The pcap-filter expression as one argument (instead of trailing words)")
        ->type_name("FILTER");
    capture_cmd->add_option("-w,--write", cap_file, "Write to FILE ('-': standard output)")
        ->type_name("FILE");
    capture_cmd
        ->add_option("-c,--count", cap_args.count,
                     "Stop after COUNT frames (default: until Ctrl-C)")
        ->type_name("COUNT")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
                std::uint64_t n = 0;
                if (!parse_number(v, n) || n == 0)
                    return "COUNT must be a number of frames, 1 or more (got '" + v +
                           "'); leave -c out to capture until Ctrl-C";
                return {};
            },
            "", "COUNT"));
    capture_cmd
        ->add_option("-s,--snaplen", cap_args.snaplen,
                     "Keep at most SNAPLEN bytes of each frame (0: all of it, up to 262144)")
        ->type_name("SNAPLEN")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
                std::uint64_t n = 0;
                if (!parse_number(v, n) || n > 262144)
                    return "SNAPLEN must be a number of bytes from 0 (the default, 262144) to "
                           "262144 (got '" +
                           v + "')";
                return {};
            },
            "", "SNAPLEN"));
    capture_cmd
        ->add_option("-B,--buffer-size", cap_buffer_mib,
                     "The kernel's capture buffer, in MiB (as dumpcap's -B; default: promiscd's, "
                     "4 MiB)")
        ->type_name("MiB")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
                std::uint64_t n = 0;
                if (!parse_number(v, n) || n == 0 || n > 4095)
                    return "the buffer size is in MiB, from 1 to 4095 (got '" + v +
                           "'); promiscd's configuration sets the largest it allows";
                return {};
            },
            "", "MiB"));
    capture_cmd
        ->add_option("-F,--format", cap_args.format,
                     "File format: pcapng (the default) or pcap (tcpdump's classic format)")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"pcapng", "pcap"}));
    capture_cmd->add_flag("-p,--no-promisc", no_promisc,
                          "Do not put LINK into promiscuous mode (hold no lease), as tcpdump -p");
    capture_cmd->add_option("--netns", cap_args.netns, netns_help)->type_name("NETNS");

    auto* monitor_cmd = app.add_subcommand("monitor", "Print events as they happen");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0)
            return app.exit(e); // --help, --version
        // A first word that is no command reaches CLI11 as an argument of
        // the default command, which takes none.
        if (dynamic_cast<const CLI::ExtrasError*>(&e) && app.get_subcommands().empty()) {
            auto rest = app.remaining();
            if (!rest.empty() && !rest.front().empty() && rest.front()[0] != '-') {
                std::string names;
                for (const auto* sub : app.get_subcommands({}))
                    names += (names.empty() ? "" : ", ") + sub->get_name();
                return usage_error("unknown command " + quote(rest.front()) +
                                   " (commands: " + names + ")");
            }
        }
        return usage_error(e.what());
    }

    if (!json.empty())
        g.json = json == "pretty" ? JsonMode::Pretty : JsonMode::Short;
    g.legend = !no_legend;
    g.pager = !no_pager;
    g.ask_password = !no_ask_password;
    g.transport = transport == "dbus"      ? TransportKind::DBus
                  : transport == "varlink" ? TransportKind::Varlink
                                           : TransportKind::Auto;
    if (capture_cmd->parsed() && capture_cmd->count("--write"))
        cap_args.file = cap_file;
    cap_args.promisc = !no_promisc;
    hold_args.netns = netns_spec(hold_args.netns);
    run_args.netns = netns_spec(run_args.netns);
    cap_args.netns = netns_spec(cap_args.netns);
    cap_args.buffer_size = cap_buffer_mib << 20;

    Context ctx(g);
    try {
        if (leases_cmd->parsed())
            return leases(ctx);
        if (hold_cmd->parsed())
            return hold(ctx, hold_args);
        if (run_cmd->parsed())
            return run(ctx, run_args);
        if (release_cmd->parsed())
            return release(ctx, release_lease);
        if (revoke_cmd->parsed())
            return revoke(ctx, revoke_lease, revoke_reason);
        if (policy_cmd->parsed())
            return policy(ctx, policy_link, policy_value);
        if (capture_cmd->parsed()) {
            resolve_capture_words(cap_args, cap_interface, cap_words);
            return capture(ctx, cap_args);
        }
        if (monitor_cmd->parsed())
            return monitor(ctx);
        return status(ctx, status_links);
    } catch (const UsageError& e) {
        return usage_error(e.what());
    } catch (const promisc::Error& e) {
        return report(e, g, ctx.using_varlink());
    } catch (const std::exception& e) {
        std::cerr << "promiscctl: " << e.what() << '\n';
        return kFailed;
    }
}

} // namespace promiscd::ctl

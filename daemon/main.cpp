// promiscd: parse arguments, build the service, run the loop.
#include "config.h"
#include "core/errors.hpp"
#include "core/names.hpp"
#include "daemon.hpp"
#include "log.hpp"

#include <cstdio>
#include <cstring>
#include <getopt.h>
#include <string>
#include <systemd/sd-daemon.h>
#include <vector>

using namespace promiscd;

namespace {

void usage(FILE* out) {
    std::fprintf(
        out, "Usage: promiscd [OPTION...]\n"
             "\n"
             "Arbitrate promiscuous mode: keep IFF_PROMISC set on a link while any lease\n"
             "on it is held, and clear it (if promiscd set it) when the last one ends.\n"
             "Clients take leases over D-Bus (org.promiscd.Promisc1 on the system bus;\n"
             "DBUS_SYSTEM_BUS_ADDRESS selects another bus); polkit decides who may.\n"
             "\n"
             "Options:\n"
             "  -h, --help              show this help and exit\n"
             "      --version           show the version and exit\n"
             "      --hold=LINK         hold a static lease on LINK while the daemon runs\n"
             "                          (repeatable; the link may appear later)\n"
             "      --state-dir=DIR     where the records live (default: $RUNTIME_DIRECTORY,\n"
             "                          else /run/promiscd)\n"
             "      --no-bus            do not connect to D-Bus\n"
             "      --config=FILE       configuration file (default /etc/promiscd/promiscd.json;\n"
             "                          that one may be missing, an explicit FILE may not)\n"
             "      --varlink=PATH      listen for varlink clients on PATH (default\n"
             "                          /run/promiscd/io.promiscd; systemd's socket wins)\n"
             "      --no-varlink        do not listen for varlink clients\n"
             "      --exit-on-idle      exit when nothing is held for idle_exit_seconds\n"
             "                          (always on when socket-activated)\n"
             "      --log-level=LEVEL   error, warning, notice, info (default) or debug\n"
             "      --log-target=TARGET console, journal or auto (default: the journal\n"
             "                          when started by systemd, else standard error)\n"
             "      --netlink-rcvbuf=BYTES\n"
             "                          receive buffer for link notifications (default 1 MiB)\n"
             "\n"
             "Signals: SIGTERM and SIGINT clear every flag promiscd set and end every\n"
             "lease (daemon-shutdown) before it exits. SIGHUP reloads the configuration\n"
             "(a broken file is reported and the running configuration kept).\n"
             "\n"
             "Exit status: 0 on a clean stop, 1 on a start-up or runtime failure,\n"
             "2 on a usage error.\n");
}

} // namespace

int main(int argc, char** argv) {
    enum {
        OPT_VERSION = 256,
        OPT_CONFIG,
        OPT_VARLINK,
        OPT_NO_VARLINK,
        OPT_EXIT_ON_IDLE,
        OPT_HOLD,
        OPT_LOG_LEVEL,
        OPT_LOG_TARGET,
        OPT_RCVBUF,
        OPT_STATE_DIR,
        OPT_NO_BUS
    };
    static const option long_options[] = {
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, OPT_VERSION},
        {"hold", required_argument, nullptr, OPT_HOLD},
        {"log-level", required_argument, nullptr, OPT_LOG_LEVEL},
        {"log-target", required_argument, nullptr, OPT_LOG_TARGET},
        {"netlink-rcvbuf", required_argument, nullptr, OPT_RCVBUF},
        {"state-dir", required_argument, nullptr, OPT_STATE_DIR},
        {"no-bus", no_argument, nullptr, OPT_NO_BUS},
        {"config", required_argument, nullptr, OPT_CONFIG},
        {"varlink", required_argument, nullptr, OPT_VARLINK},
        {"no-varlink", no_argument, nullptr, OPT_NO_VARLINK},
        {"exit-on-idle", no_argument, nullptr, OPT_EXIT_ON_IDLE},
        {nullptr, 0, nullptr, 0},
    };
    DaemonOptions options;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, nullptr)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            std::printf("promiscd %s\n", PROMISCD_VERSION);
            return 0;
        case OPT_HOLD:
            try {
                core::validate_interface_name(optarg);
            } catch (const core::Error& e) {
                std::fprintf(stderr, "promiscd: --hold: %s\n", e.what());
                return 2;
            }
            options.holds.emplace_back(optarg);
            break;
        case OPT_LOG_LEVEL:
            if (auto l = log::parse_level(optarg)) {
                log::set_level(*l);
            } else {
                std::fprintf(stderr, "promiscd: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_LOG_TARGET:
            if (std::strcmp(optarg, "console") == 0) {
                log::set_console(true);
            } else if (std::strcmp(optarg, "journal") == 0) {
                log::set_console(false);
            } else if (std::strcmp(optarg, "auto") != 0) {
                std::fprintf(stderr, "promiscd: unknown log target '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_RCVBUF: {
            char* end = nullptr;
            long v = std::strtol(optarg, &end, 10);
            if (!*optarg || *end || v <= 0 || v > (1 << 30)) {
                std::fprintf(stderr, "promiscd: --netlink-rcvbuf: '%s' is not a size in bytes\n",
                             optarg);
                return 2;
            }
            options.netlink_rcvbuf = static_cast<int>(v);
            break;
        }
        case OPT_STATE_DIR:
            if (!*optarg) {
                std::fprintf(stderr, "promiscd: --state-dir: empty path\n");
                return 2;
            }
            options.state_dir = optarg;
            break;
        case OPT_NO_BUS:
            options.use_bus = false;
            break;
        case OPT_CONFIG:
        case OPT_VARLINK:
            if (!*optarg) {
                std::fprintf(stderr, "promiscd: --%s: empty path\n",
                             c == OPT_CONFIG ? "config" : "varlink");
                return 2;
            }
            (c == OPT_CONFIG ? options.config_path : options.varlink_path) = optarg;
            break;
        case OPT_NO_VARLINK:
            options.varlink_path.clear();
            break;
        case OPT_EXIT_ON_IDLE:
            options.exit_on_idle = true;
            break;
        default:
            std::fprintf(stderr, "Try 'promiscd --help' for more information.\n");
            return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "promiscd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    try {
        Daemon daemon(std::move(options));
        return daemon.run();
    } catch (const std::exception& e) {
        log::error(e.what());
        sd_notify(0, ("STATUS=Failed: " + std::string(e.what())).c_str());
        return 1;
    }
}

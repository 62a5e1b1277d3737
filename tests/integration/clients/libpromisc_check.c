/* A C program outside the tree, built by test_libpromisc with nothing but
 * `pkg-config promisc` against an installed libpromisc, exercising the C
 * API against the real daemon. One line per call: "NAME <return value>
 * <daemon error name or ->"; it waits for a line on standard input where
 * the test wants to look around.
 *
 *   libpromisc_check_c [--varlink SOCKET] modes|wait|errors|denied LINK */
#include <promisc/promisc.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct promisc_options options = PROMISC_OPTIONS_INIT;

static void say(const char* name, int r, promisc_ctx* ctx) {
    const char* error_name = ctx && r < 0 ? promisc_last_error_name(ctx) : "";
    printf("%s %d %s | %s\n", name, r, *error_name ? error_name : "-",
           ctx && r < 0 ? promisc_last_error(ctx) : "");
    fflush(stdout);
}

static void wait_for_test(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return;
}

static int modes(promisc_ctx* ctx, const char* link) {
    say("ON", promisc_mode_on(ctx, link), ctx);
    wait_for_test();
    say("ON", promisc_mode_on(ctx, link), ctx);
    say("IS", promisc_mode_is_on(ctx, link), ctx);
    wait_for_test();
    say("OFF", promisc_mode_off(ctx, link), ctx);
    wait_for_test();
    say("OFF", promisc_mode_off(ctx, link), ctx);
    say("IS", promisc_mode_is_on(ctx, link), ctx);
    return 0;
}

static int wait_data(promisc_ctx* ctx, const char* link) {
    struct promisc_frame frame;
    unsigned i;
    int r;

    say("NOTHING", promisc_wait_data(ctx, 100, &frame), ctx);
    say("ON", promisc_mode_on(ctx, link), ctx);
    say("FILTER", promisc_set_capture_filter(ctx, "ether proto 0x88b5"), ctx);
    say("IDLE", promisc_wait_data(ctx, 500, &frame), ctx);
    say("READY", 0, ctx);
    r = promisc_wait_data(ctx, 20000, &frame);
    say("DATA", r, ctx);
    if (r == 0) {
        printf("FRAME %s %u %u %u ", frame.ifname, (unsigned)frame.caplen,
               (unsigned)frame.original_length, (unsigned)frame.link_type);
        for (i = 0; i < frame.caplen; ++i)
            printf("%02x", frame.data[i]);
        printf("\n");
        fflush(stdout);
    }
    say("OFF", promisc_mode_off(ctx, link), ctx);
    say("AFTER", promisc_wait_data(ctx, 100, &frame), ctx);
    return 0;
}

static int errors(promisc_ctx* ctx, const char* link) {
    struct promisc_frame frame;
    struct promisc_options nowhere = PROMISC_OPTIONS_INIT;
    promisc_ctx* more[2] = {NULL, NULL};
    promisc_ctx* none = NULL;
    int r;

    say("NOSUCH", promisc_mode_on(ctx, "nosuch0"), ctx);
    say("EMPTY", promisc_mode_on(ctx, ""), ctx);
    say("NULL", promisc_mode_on(ctx, NULL), ctx);

    say("ON", promisc_mode_on(ctx, link), ctx);
    say("FILTER", promisc_set_capture_filter(ctx, "ether proto nonsense"), ctx);
    say("BADFILTER", promisc_wait_data(ctx, 100, &frame), ctx);

    /* Two more contexts of the same user on the same link: the third lease
     * is over the quota the test configured (2 per uid). */
    promisc_ctx_new(&more[0], &options);
    promisc_ctx_new(&more[1], &options);
    say("SECOND", promisc_mode_on(more[0], link), more[0]);
    say("QUOTA", promisc_mode_on(more[1], link), more[1]);
    promisc_ctx_free(more[0]);
    promisc_ctx_free(more[1]);

    nowhere.transport = PROMISC_TRANSPORT_VARLINK;
    nowhere.varlink_socket = "/nonexistent/promiscd/io.promiscd";
    r = promisc_ctx_new(&none, &nowhere);
    say("UNREACHABLE", r, NULL);
    printf("UNREACHABLE_CTX %s\n", none ? "set" : "null");
    return 0;
}

static int denied(promisc_ctx* ctx, const char* link) {
    say("ON", promisc_mode_on(ctx, link), ctx);
    say("IS", promisc_mode_is_on(ctx, link), ctx);
    return 0;
}

int main(int argc, char** argv) {
    promisc_ctx* ctx = NULL;
    const char *command, *link;
    int i = 1, r;

    if (argc > 2 && strcmp(argv[1], "--varlink") == 0) {
        options.transport = PROMISC_TRANSPORT_VARLINK;
        options.varlink_socket = argv[2];
        i = 3;
    }
    if (argc != i + 2) {
        fprintf(stderr, "usage: libpromisc_check_c [--varlink SOCKET] COMMAND LINK\n");
        return 2;
    }
    command = argv[i];
    link = argv[i + 1];
    printf("LIBRARY %s HEADERS %s\n", promisc_version(), PROMISC_VERSION);
    r = promisc_ctx_new(&ctx, &options);
    if (r < 0) {
        say("CTX", r, NULL);
        return 1;
    }
    if (strcmp(command, "modes") == 0)
        r = modes(ctx, link);
    else if (strcmp(command, "wait") == 0)
        r = wait_data(ctx, link);
    else if (strcmp(command, "errors") == 0)
        r = errors(ctx, link);
    else if (strcmp(command, "denied") == 0)
        r = denied(ctx, link);
    else
        r = 2;
    promisc_ctx_free(ctx);
    return r;
}

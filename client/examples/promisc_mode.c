/* Zephyr-style: promiscuous mode on, wait for frames, off.
 *
 *   promisc_mode LINK [COUNT]
 *
 * Build: cc promisc_mode.c $(pkg-config --cflags --libs promisc) */
#include <promisc/promisc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
    promisc_ctx* ctx = NULL;
    struct promisc_frame frame;
    int count, r, i;

    if (argc < 2) {
        fprintf(stderr, "usage: promisc_mode LINK [COUNT]\n");
        return 2;
    }
    count = argc > 2 ? atoi(argv[2]) : 5;
    r = promisc_ctx_new(&ctx, NULL);
    if (r < 0) {
        fprintf(stderr, "cannot reach promiscd: %s\n", strerror(-r));
        return 1;
    }
    r = promisc_mode_on(ctx, argv[1]);
    if (r < 0 && r != -EALREADY) {
        fprintf(stderr, "promisc_mode_on: %s (%s)\n", strerror(-r), promisc_last_error(ctx));
        promisc_ctx_free(ctx);
        return 1;
    }
    for (i = 0; i < count; ++i) {
        r = promisc_wait_data(ctx, 5000, &frame);
        if (r == -EAGAIN) {
            printf("no frame within 5 s\n");
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "promisc_wait_data: %s (%s)\n", strerror(-r), promisc_last_error(ctx));
            break;
        }
        printf("%s: %u bytes at %llu ns, link type %u\n", frame.ifname,
               (unsigned)frame.original_length, (unsigned long long)frame.timestamp_ns,
               (unsigned)frame.link_type);
    }
    r = promisc_mode_off(ctx, argv[1]);
    if (r < 0)
        fprintf(stderr, "promisc_mode_off: %s\n", strerror(-r));
    promisc_ctx_free(ctx);
    return r < 0 ? 1 : 0;
}

/* `laguna bench --synth` and the device roofline (bench_synth.h). */
#include "bench_synth.h"

#include <stdio.h>
#include <string.h>

#include "args.h"
#include "model/model_synth.h"

int bench_synth_option(int argc, char **argv, int *i, bench_synth *s) {
    const char *a = argv[*i], *v;
    int bad = 0;
    if (!strcmp(a, "--synth"))
        bad = !(s->preset = arg_value(argc, argv, i));
    else if (!strcmp(a, "--type"))
        bad = !(s->type = arg_value(argc, argv, i));
    else if (!strcmp(a, "--layers"))
        bad = !(v = arg_value(argc, argv, i)) || arg_int(a, v, 1, 100000, &s->layers);
    else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
        bad = !(v = arg_value(argc, argv, i)) || arg_u64(a, v, &s->seed);
        s->seed_given = 1;
    } else
        return 0;
    return bad ? -1 : 1;
}

int bench_open_model(const char *path, bench_synth *s, const laguna_model_options *o,
                     laguna_model **out) {
    laguna_error err = {0};
    laguna_status st;
    if (s->preset) {
        if (!s->seed_given) s->seed = 1;
        st = lg_model_open_synth(s->preset, s->layers, s->type, s->seed, o, out, &err);
        snprintf(s->label, sizeof s->label, "synthetic %s (%d layers, %s, seed %llu)", s->preset,
                 st ? 0 : laguna_model_get_info(*out)->n_layers, s->type ? s->type : "bf16",
                 (unsigned long long)s->seed);
    } else {
        st = laguna_model_open(path, o, out, &err);
        snprintf(s->label, sizeof s->label, "%s", path);
    }
    if (st) fprintf(stderr, "laguna %s: %s\n", arg_command(), err.message);
    return st != LAGUNA_OK;
}

void bench_print_device_roofline(laguna_model *m, double decode_bytes, double decode_tps) {
    lg_backend *be = m->backend;
    if (!be->ops->copy_bandwidth_gbps) return;
    double bw = be->ops->copy_bandwidth_gbps(be);
    if (bw <= 0) {
        printf("%-34s %s\n", "device copy bandwidth", "could not be measured");
        return;
    }
    double floor_tps = bw * 1e9 / decode_bytes;
    printf("%-34s %9.1f GB/s (%s copy, read + write, best of 5)\n", "device copy bandwidth", bw,
           be->ops->name);
    printf("%-34s %8.2f tok/s (%.3f ms per token)\n", "decode roofline (bytes / copy bw)",
           floor_tps, 1e3 / floor_tps);
    printf("%-34s %8.2f tok/s %.3f of the HBM roofline\n", "decode vs roofline", decode_tps,
           decode_tps / floor_tps);
}

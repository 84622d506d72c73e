/*
 * model_file.h: the whole of a model file, for the Python binding
 * (csae/_engine.pyx), so that csae.load reads files with the same code as
 * the public csae_model_file_* functions and accepts exactly the files they
 * accept.  Internal to the engine: not part of the public API (the shared
 * library hides these names); csae/engine.pxd mirrors it.
 *
 * A read is two calls on one open descriptor: csae_model_file_layout
 * validates the whole file and reports its sizes, the caller allocates
 * arrays of those sizes, and csae_model_file_read_all validates the whole
 * file again while copying into them.  Every copy is bounded by the sizes
 * in the caller's layout, never by what the file says at that moment; a
 * file that changed in between gives CSAE_ERR_MISMATCH (or FORMAT) and
 * possibly partly written arrays, never a write outside them.
 */
#ifndef CSAE_MODEL_FILE_H
#define CSAE_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "csae.h"

/* Longest hyperparameter record (characters), as csae/_persist.py's
 * _MAX_RECORD. */
#define CSAE_MODEL_RECORD_MAX 2048

typedef struct {
    csae_model model;
    size_t elem_size;        /* 8 float64, 4 float32 */
    int scale_inputs;
    uint64_t version;        /* format_version */
    uint64_t n_iter;         /* = the loss curve's length */
    int has_velocity, has_adam, has_running, has_range, has_rng;
    uint64_t rng_state, adam_t, running_batches;
    int has_stop_reason;     /* format version 4: stop_reason is present */
    char stop_reason[32];    /* one of csae.solvers.STOP_REASONS, or "" */
    size_t record_len;
    char record[CSAE_MODEL_RECORD_MAX + 1]; /* the hyperparameter record, ASCII JSON */
} csae_model_layout;

/* Where csae_model_file_read_all copies each array.  An array the layout
 * says is present must be given, with its layout size: params, velocity,
 * adam_m, adam_v in the model's element type (W h*n, b h, Wd n*h, bd n),
 * rho_running h of that type, loss_curve n_iter doubles, data_min and
 * data_scale n doubles each. */
typedef struct {
    void *params[4];
    void *velocity[4];
    void *adam_m[4];
    void *adam_v[4];
    void *rho_running;
    double *loss_curve;
    double *data_min, *data_scale;
} csae_model_arrays;

/* Validate the file open on fd (read with pread only: the offset is not
 * used or moved) and fill *layout. */
csae_status csae_model_file_layout(int fd, csae_model_layout *layout);

/* Validate it again and copy every array to *dest; CSAE_ERR_MISMATCH if
 * the file no longer has *layout, CSAE_ERR_ARGUMENT if an array the layout
 * names is NULL. */
csae_status csae_model_file_read_all(int fd, const csae_model_layout *layout,
                                     const csae_model_arrays *dest);

#endif /* CSAE_MODEL_FILE_H */

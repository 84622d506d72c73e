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

/* ---- Deep models' files (StackedEncoder, SparseAutoencoderClassifier) ----
 *
 * The same two-call read for csae/_deep_persist.py: csae_deep_file_layout
 * validates the file and reports every member's dtype and shape (and the
 * hyperparameter record, which C checks only as bounded ASCII text: its
 * content is Python's), csae_deep_file_read_all validates it again while
 * copying each present member into dest[i] (NULL: not copied), refusing
 * (CSAE_ERR_MISMATCH) a file that no longer has the layout. */

/* Longest hyperparameter record of a deep model (characters): the
 * classifier's and every autoencoder's parameters; csae/_deep_persist.py's
 * _MAX_RECORD. */
#define CSAE_DEEP_RECORD_MAX 65536

/* Members: first these, then CSAE_DL_COUNT per layer slot (the hidden
 * layers, then the softmax layer), CSAE_DEEP_FILE_MAX_LAYERS + 1 slots;
 * csae_deep_member_name gives each one's name. */
enum {
    CSAE_DG_FORMAT, CSAE_DG_VERSION, CSAE_DG_CSAE_VERSION, CSAE_DG_HYPER, CSAE_DG_SIZES,
    CSAE_DG_DMIN, CSAE_DG_DSCALE, CSAE_DG_CLASSES, CSAE_DG_LOSS, CSAE_DG_VLOSS, CSAE_DG_COUNT
};
enum {
    CSAE_DL_W, CSAE_DL_B, CSAE_DL_PW, CSAE_DL_PB, CSAE_DL_DW, CSAE_DL_DB, CSAE_DL_AMIN,
    CSAE_DL_ASCALE, CSAE_DL_AW, CSAE_DL_AB, CSAE_DL_ALOSS, CSAE_DL_COUNT
};
#define CSAE_DEEP_MEMBERS (CSAE_DG_COUNT + (CSAE_DEEP_FILE_MAX_LAYERS + 1) * CSAE_DL_COUNT)

/* Member i's name without ".npy" into out (cap >= 40 bytes); its length,
 * 0 if i is out of range. */
size_t csae_deep_member_name(size_t i, char *out, size_t cap);

typedef struct {
    csae_deep_file info;
    uint64_t version;
    int present[CSAE_DEEP_MEMBERS];
    char kind[CSAE_DEEP_MEMBERS];          /* 'f', 'i', 'u' or 'U' */
    uint64_t itemsize[CSAE_DEEP_MEMBERS];  /* bytes per element */
    int ndim[CSAE_DEEP_MEMBERS];
    uint64_t shape[CSAE_DEEP_MEMBERS][2];
    size_t record_len;
} csae_deep_shape;

typedef struct {
    csae_deep_shape shape;
    char record[CSAE_DEEP_RECORD_MAX + 1]; /* ASCII JSON */
} csae_deep_layout;

csae_status csae_deep_file_layout(int fd, csae_deep_layout *layout);
/* dest: CSAE_DEEP_MEMBERS pointers, each NULL or room for member i
 * (itemsize x shape bytes); the strings, version and sizes are never
 * copied (the layout has them). */
csae_status csae_deep_file_read_all(int fd, const csae_deep_layout *layout, void *const *dest);

#endif /* CSAE_MODEL_FILE_H */

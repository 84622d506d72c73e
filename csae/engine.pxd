# csae/engine.pxd: the engine's C API for other Cython extensions.
#
#     from csae.engine cimport csae_model, csae_encode_f64, ...
#
# Declarations only, mirroring csae.h (the installed header, whose comments
# document every function; keep the two in step).  Every function is
# declared nogil: none of them touches Python objects, so call them inside
# `with nogil:` on memory you own (NumPy arrays, a trained model's
# encoder_weights_, ...).  Build the extension against the shared library
# that pip installed with csae:
#
#     Extension("myext", ["myext.pyx"],
#               include_dirs=[csae.get_include()],
#               library_dirs=[os.path.dirname(csae.get_library())],
#               runtime_library_dirs=[os.path.dirname(csae.get_library())],
#               libraries=["csae"])
#
# examples/cython/ is a worked example that the test suite builds.
# csae's own binding (csae/_engine.pyx) cimports its declarations from here
# too, and compiles the C sources into its extension.
from libc.stdint cimport uint64_t

cdef extern from "csae.h" nogil:
    ctypedef enum csae_status:
        CSAE_OK
        CSAE_ERR_ARGUMENT
        CSAE_ERR_WORKSPACE
        CSAE_ERR_NONFINITE
        CSAE_ERR_STOPPED
        CSAE_ERR_NOT_FOUND
        CSAE_ERR_NOT_A_FILE
        CSAE_ERR_FILE
        CSAE_ERR_FORMAT
        CSAE_ERR_UNSUPPORTED
        CSAE_ERR_DTYPE
        CSAE_ERR_MISMATCH
        CSAE_ERR_LABEL

    const char *csae_status_message(csae_status status)

    const char *CSAE_VERSION_STRING
    const char *csae_version()

    ctypedef enum csae_decoder:
        CSAE_DECODER_SIGMOID
        CSAE_DECODER_LINEAR

    ctypedef struct csae_model:
        size_t n_features
        size_t n_hidden
        csae_decoder decoder
        double sparsity_target
        double sparsity_weight
        double weight_decay

    ctypedef struct csae_sgd:
        double learning_rate
        double momentum
        size_t batch_size
        int shuffle

    ctypedef struct csae_solver:
        int adam
        double beta_1
        double beta_2
        double epsilon
        double sparsity_smoothing

    ctypedef struct csae_params_f64:
        double *W
        double *b
        double *Wd
        double *bd

    ctypedef struct csae_params_f32:
        float *W
        float *b
        float *Wd
        float *bd

    uint64_t csae_rng_next(uint64_t *state)
    void csae_rng_permutation(uint64_t *state, size_t *order, size_t m)
    csae_status csae_init_params_f64(const csae_model *model, csae_params_f64 params, uint64_t *state)
    csae_status csae_init_params_f32(const csae_model *model, csae_params_f32 params, uint64_t *state)

    enum: CSAE_MAX_THREADS

    ctypedef struct csae_workspace:
        void *data
        size_t size
        size_t n_threads

    size_t csae_forward_workspace_size(const csae_model *model, size_t rows,
                                       size_t elem_size, size_t n_threads)
    size_t csae_train_workspace_size(const csae_model *model, size_t rows,
                                     size_t elem_size, size_t n_threads)
    size_t csae_epoch_workspace_size(const csae_model *model, const csae_sgd *sgd,
                                     size_t n_samples, size_t elem_size, size_t n_threads)

    csae_status csae_encode_f64(const csae_model *model, const double *W, const double *b,
                                const double *X, size_t m, double *A, const csae_workspace *ws)
    csae_status csae_encode_f32(const csae_model *model, const float *W, const float *b,
                                const float *X, size_t m, float *A, const csae_workspace *ws)
    csae_status csae_decode_f64(const csae_model *model, const double *Wd, const double *bd,
                                const double *A, size_t m, double *Y, const csae_workspace *ws)
    csae_status csae_decode_f32(const csae_model *model, const float *Wd, const float *bd,
                                const float *A, size_t m, float *Y, const csae_workspace *ws)
    csae_status csae_reconstruct_f64(const csae_model *model, csae_params_f64 params,
                                     const double *X, size_t m, double *Y, const csae_workspace *ws)
    csae_status csae_reconstruct_f32(const csae_model *model, csae_params_f32 params,
                                     const float *X, size_t m, float *Y, const csae_workspace *ws)

    csae_status csae_objective_f64(const csae_model *model, csae_params_f64 params,
                                   const double *X, size_t m, double *loss,
                                   csae_params_f64 grads, double *rho_hat,
                                   const csae_workspace *ws)
    csae_status csae_objective_f32(const csae_model *model, csae_params_f32 params,
                                   const float *X, size_t m, double *loss,
                                   csae_params_f32 grads, float *rho_hat,
                                   const csae_workspace *ws)

    csae_status csae_sgd_step_f64(const csae_model *model, const csae_sgd *sgd,
                                  csae_params_f64 params, csae_params_f64 velocity,
                                  const double *X, size_t m, double *loss,
                                  const csae_workspace *ws)
    csae_status csae_sgd_step_f32(const csae_model *model, const csae_sgd *sgd,
                                  csae_params_f32 params, csae_params_f32 velocity,
                                  const float *X, size_t m, double *loss,
                                  const csae_workspace *ws)

    ctypedef struct csae_train_state_f64:
        csae_params_f64 velocity
        csae_params_f64 adam_m
        csae_params_f64 adam_v
        uint64_t adam_t
        double *rho_running
        uint64_t running_batches

    ctypedef struct csae_train_state_f32:
        csae_params_f32 velocity
        csae_params_f32 adam_m
        csae_params_f32 adam_v
        uint64_t adam_t
        float *rho_running
        uint64_t running_batches

    csae_status csae_train_step_f64(const csae_model *model, const csae_sgd *sgd,
                                    const csae_solver *solver, csae_params_f64 params, csae_train_state_f64 *state,
                                    const double *X, size_t m, double *loss,
                                    const csae_workspace *ws)
    csae_status csae_train_step_f32(const csae_model *model, const csae_sgd *sgd,
                                    const csae_solver *solver, csae_params_f32 params, csae_train_state_f32 *state,
                                    const float *X, size_t m, double *loss,
                                    const csae_workspace *ws)

    ctypedef struct csae_flat_state_f64:
        double *velocity
        double *adam_m
        double *adam_v
        uint64_t adam_t

    ctypedef struct csae_flat_state_f32:
        float *velocity
        float *adam_m
        float *adam_v
        uint64_t adam_t

    csae_status csae_flat_step_f64(const csae_sgd *sgd, const csae_solver *solver,
                                   double *theta, const double *grad, size_t n,
                                   csae_flat_state_f64 *state, size_t n_threads)
    csae_status csae_flat_step_f32(const csae_sgd *sgd, const csae_solver *solver,
                                   float *theta, const float *grad, size_t n,
                                   csae_flat_state_f32 *state, size_t n_threads)

    ctypedef int (*csae_stop_fn)(void *context) noexcept

    ctypedef struct csae_epoch_result:
        double loss
        size_t batches_done
        size_t rows_done

    csae_status csae_sgd_epoch_f64(const csae_model *model, const csae_sgd *sgd,
                                   csae_params_f64 params, csae_params_f64 velocity,
                                   const double *X, size_t n_samples, uint64_t *rng_state,
                                   csae_stop_fn stop, void *stop_context, size_t check_every,
                                   csae_epoch_result *result, const csae_workspace *ws)
    csae_status csae_sgd_epoch_f32(const csae_model *model, const csae_sgd *sgd,
                                   csae_params_f32 params, csae_params_f32 velocity,
                                   const float *X, size_t n_samples, uint64_t *rng_state,
                                   csae_stop_fn stop, void *stop_context, size_t check_every,
                                   csae_epoch_result *result, const csae_workspace *ws)

    csae_status csae_train_epoch_f64(const csae_model *model, const csae_sgd *sgd,
                                     const csae_solver *solver, csae_params_f64 params, csae_train_state_f64 *state,
                                     const double *X, size_t n_samples, uint64_t *rng_state,
                                     csae_stop_fn stop, void *stop_context, size_t check_every,
                                     csae_epoch_result *result, const csae_workspace *ws)
    csae_status csae_train_epoch_f32(const csae_model *model, const csae_sgd *sgd,
                                     const csae_solver *solver, csae_params_f32 params, csae_train_state_f32 *state,
                                     const float *X, size_t n_samples, uint64_t *rng_state,
                                     csae_stop_fn stop, void *stop_context, size_t check_every,
                                     csae_epoch_result *result, const csae_workspace *ws)

    # Block-wise full-batch objective (csae.h documents the decomposition).
    csae_status csae_activation_sums_f64(const csae_model *model, const double *W,
                                         const double *b, const double *X, size_t m,
                                         double *sums, const csae_workspace *ws)
    csae_status csae_activation_sums_f32(const csae_model *model, const float *W,
                                         const float *b, const float *X, size_t m,
                                         double *sums, const csae_workspace *ws)
    csae_status csae_objective_part_f64(const csae_model *model, csae_params_f64 params,
                                        const double *X, size_t m, const double *rho_hat,
                                        size_t n_total, double *part, csae_params_f64 grads,
                                        const csae_workspace *ws)
    csae_status csae_objective_part_f32(const csae_model *model, csae_params_f32 params,
                                        const float *X, size_t m, const double *rho_hat,
                                        size_t n_total, double *part, csae_params_f32 grads,
                                        const csae_workspace *ws)

    # L-BFGS by reverse communication (lbfgs.c)
    ctypedef enum csae_lbfgs_task:
        CSAE_LBFGS_EVALUATE
        CSAE_LBFGS_ITERATE
        CSAE_LBFGS_CONVERGED
        CSAE_LBFGS_MAX_ITER
        CSAE_LBFGS_MAX_EVAL
        CSAE_LBFGS_LINE_SEARCH_FAILED
        CSAE_LBFGS_NONFINITE
        CSAE_LBFGS_ERROR

    ctypedef struct csae_lbfgs_options:
        size_t history
        size_t max_iter
        size_t max_eval
        double ftol
        double gtol
        size_t n_threads
        int float32_storage

    ctypedef struct csae_lbfgs:
        size_t iterations
        size_t evaluations
        size_t restarts
        size_t skipped

    csae_lbfgs_options csae_lbfgs_default_options()
    size_t csae_lbfgs_workspace_size(size_t n, const csae_lbfgs_options *options)
    csae_status csae_lbfgs_init(csae_lbfgs *state, size_t n, const csae_lbfgs_options *options,
                                double *work, size_t work_len)
    csae_lbfgs_task csae_lbfgs_step(csae_lbfgs *state, double *x, double *f, double *g)

    ctypedef enum csae_kernel_path:
        CSAE_PATH_AUTO
        CSAE_PATH_PORTABLE
        CSAE_PATH_AVX2
        CSAE_PATH_AVX512

    csae_status csae_set_kernel_path(csae_kernel_path path)
    csae_kernel_path csae_get_kernel_path()
    int csae_kernel_path_supported(csae_kernel_path path)
    size_t csae_kernel_path_count()
    csae_kernel_path csae_kernel_path_at(size_t i)
    const char *csae_kernel_path_name(csae_kernel_path path)

    # Model files written by SparseAutoencoder.save (csae.h documents them).
    csae_status csae_model_file_info(const char *path, csae_model *model, size_t *elem_size)
    csae_status csae_model_file_read_f64(const char *path, const csae_model *model,
                                         csae_params_f64 params)
    csae_status csae_model_file_read_f32(const char *path, const csae_model *model,
                                         csae_params_f32 params)
    csae_status csae_model_file_input_range(const char *path, const csae_model *model,
                                            int *scale_inputs, double *data_min,
                                            double *data_scale)


# Deep networks: sigmoid layers under a softmax output (csae.h, "Deep
# networks"; theta is the flat parameter vector described there).
from libc.stdint cimport int64_t

cdef extern from "csae.h" nogil:
    ctypedef struct csae_deep_net:
        size_t n_hidden_layers
        const size_t *sizes

    size_t csae_deep_n_params(const csae_deep_net *net)
    size_t csae_deep_forward_workspace_size(const csae_deep_net *net, size_t rows,
                                            size_t elem_size, size_t n_threads)
    size_t csae_deep_objective_workspace_size(const csae_deep_net *net, size_t rows,
                                              size_t elem_size, size_t n_threads)
    csae_status csae_deep_forward_f64(const csae_deep_net *net, const double *theta,
                                      const double *X, size_t m, double *P,
                                      const csae_workspace *ws)
    csae_status csae_deep_forward_f32(const csae_deep_net *net, const float *theta,
                                      const float *X, size_t m, float *P,
                                      const csae_workspace *ws)
    csae_status csae_deep_encode_f64(const csae_deep_net *net, const double *theta,
                                     const double *X, size_t m, double *H,
                                     const csae_workspace *ws)
    csae_status csae_deep_encode_f32(const csae_deep_net *net, const float *theta,
                                     const float *X, size_t m, float *H,
                                     const csae_workspace *ws)
    csae_status csae_deep_objective_f64(const csae_deep_net *net, const double *theta,
                                        const double *X, const int64_t *y, size_t m,
                                        double weight_decay, double *loss, double *grad,
                                        const csae_workspace *ws)
    csae_status csae_deep_objective_f32(const csae_deep_net *net, const float *theta,
                                        const float *X, const int64_t *y, size_t m,
                                        double weight_decay, double *loss, float *grad,
                                        const csae_workspace *ws)

    # Deep models' files written by StackedEncoder.save and
    # SparseAutoencoderClassifier.save (csae.h, "Deep models' files").
    enum: CSAE_DEEP_FILE_MAX_LAYERS
    ctypedef enum csae_deep_file_kind:
        CSAE_DEEP_FILE_ENCODER
        CSAE_DEEP_FILE_CLASSIFIER
    ctypedef struct csae_deep_file:
        csae_deep_file_kind kind
        size_t n_hidden_layers
        size_t sizes[CSAE_DEEP_FILE_MAX_LAYERS + 2]
        size_t elem_size
        size_t n_params
        int has_range
    csae_status csae_deep_file_info(const char *path, csae_deep_file *info)
    csae_status csae_deep_file_read_f64(const char *path, const csae_deep_file *info,
                                        double *theta)
    csae_status csae_deep_file_read_f32(const char *path, const csae_deep_file *info,
                                        float *theta)
    csae_status csae_deep_file_input_range(const char *path, const csae_deep_file *info,
                                           double *data_min, double *data_scale)

/*
 * library.c: what the library says about itself: the meaning of each
 * status code and its version.  (Kept apart from the kernels and the
 * dispatch so that adding a status code touches one small file.)
 */
#include "csae.h"

const char *csae_status_message(csae_status status)
{
    switch (status) {
    case CSAE_OK:
        return "success";
    case CSAE_ERR_ARGUMENT:
        return "invalid argument (size, pointer or hyperparameter)";
    case CSAE_ERR_WORKSPACE:
        return "workspace smaller than its size query";
    case CSAE_ERR_NONFINITE:
        return "non-finite objective, gradient or parameter";
    case CSAE_ERR_STOPPED:
        return "training stopped on request";
    case CSAE_ERR_NOT_FOUND:
        return "model file not found";
    case CSAE_ERR_NOT_A_FILE:
        return "model path is a directory or not a regular file";
    case CSAE_ERR_FILE:
        return "model file cannot be opened or read (permission or I/O error)";
    case CSAE_ERR_FORMAT:
        return "not a valid csae model file (truncated, corrupted or not written by "
               "SparseAutoencoder.save)";
    case CSAE_ERR_UNSUPPORTED:
        return "model file not readable by this csae (newer format version, compressed "
               "or Fortran-ordered members, or scale_inputs without an input range)";
    case CSAE_ERR_DTYPE:
        return "model element type differs from the function's (_f32 on a float64 "
               "model or _f64 on a float32 model)";
    case CSAE_ERR_MISMATCH:
        return "model in the file differs from the csae_model passed (shape, decoder "
               "or objective)";
    case CSAE_ERR_LABEL:
        return "class label negative or not below the number of classes";
    }
    return "unknown status";
}

const char *csae_version(void)
{
    return CSAE_VERSION_STRING;
}

/* Builds without CUDA: the NCCL communicator and the GPU binding say so. */
#ifndef LAGUNA_CUDA
#include "core/error.h"
#include "parallel/comm.h"

laguna_status lg_nccl_comms_new(const lg_nccl_layout *layout, const int *devices, lg_comm **comms,
                                laguna_error *err) {
    (void)layout, (void)devices, (void)comms;
    return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                   "several GPUs: this build has no CUDA (nvcc was not found when it was built)");
}

void lg_cuda_use_device(int device) {
    (void)device;
}
#endif

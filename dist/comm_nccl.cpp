// The NCCL backend (compiled only with FG_WITH_NCCL, i.e. CUDA on and NCCL found): CUDA tensors are reduced and
// broadcast by NCCL, one GPU per rank; host buffers, barriers and the roll call stay on the MPI communicator it
// wraps, which also carries NCCL's unique id from rank 0 to the others.
//
// Ordering: a collective runs on a stream of its own, after an event recorded on the device's compute stream (so
// it reads finished gradients, and backward's kernels keep running beside it); its completion is an event the
// Request polls, and wait() returns only after it, so later compute-stream work sees the result.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>

#include "dist/comm.h"
#include "tensor/cuda/context.h"

namespace fg::dist {

namespace {

void check_cuda(cudaError_t e, const char* what) {
  FG_CHECK(e == cudaSuccess, what << ": " << cudaGetErrorString(e));
}

void check_nccl(ncclResult_t r, int /*rank: named by the caller's report*/, const char* what) {
  FG_CHECK(r == ncclSuccess, what << " failed in NCCL: " << ncclGetErrorString(r));
}

class NcclRequest : public Request {
 public:
  NcclRequest(cudaEvent_t done, ncclComm_t comm, int rank) : done_(done), comm_(comm), rank_(rank) {}
  ~NcclRequest() override { cudaEventDestroy(done_); }
  bool test() override {
    const cudaError_t e = cudaEventQuery(done_);
    if (e == cudaSuccess) return true;
    FG_CHECK(e == cudaErrorNotReady, "waiting for an NCCL collective: " << cudaGetErrorString(e));
    // A peer that died leaves NCCL waiting; its asynchronous error says so.
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    check_nccl(async, rank_, "a collective");
    return false;
  }

 private:
  cudaEvent_t done_;
  ncclComm_t comm_;
  int rank_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> mpi, const Device& device) : mpi_(std::move(mpi)) {
    rank_ = mpi_->rank();
    size_ = mpi_->size();
    local_rank_ = mpi_->local_rank();
    timeout_s_ = mpi_->timeout_seconds();
    device_ = device.index;
    const int n = cuda::device_count();
    FG_CHECK(device_ < n, "rank " << rank_ << " (local rank " << local_rank_ << ") needs GPU " << device_
                                  << " but this machine has " << n
                                  << "; start at most one rank per GPU on each machine");
    cuda::DeviceGuard guard(device_);
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), rank_, "ncclGetUniqueId");
    mpi_->broadcast_bytes(&id, int64_t(sizeof id), 0, "the broadcast of NCCL's unique id");
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), rank_, "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }

  ~NcclCommunicator() override {
    cuda::DeviceGuard guard(device_);
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const char* backend() const override { return "nccl"; }

  std::unique_ptr<Request> all_reduce_sum_async(double* values, int64_t n) override {
    return mpi_->all_reduce_sum_async(values, n);
  }
  std::unique_ptr<Request> all_gather_async(const uint64_t* mine, uint64_t* all) override {
    return mpi_->all_gather_async(mine, all);
  }
  std::unique_ptr<Request> broadcast_async(void* bytes, int64_t n, int root) override {
    return mpi_->broadcast_async(bytes, n, root);
  }
  std::unique_ptr<Request> barrier_async() override { return mpi_->barrier_async(); }

  std::unique_ptr<Request> all_reduce_sum_async(Tensor& t) override {
    if (t.device().is_cpu()) return mpi_->all_reduce_sum_async(t);
    check_tensor(t);
    cuda::DeviceGuard guard(device_);
    after_compute();
    check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), ncclFloat32, ncclSum, comm_, stream_),
               rank_, "ncclAllReduce");
    return done_event();
  }

  std::unique_ptr<Request> broadcast_async(Tensor& t, int root) override {
    if (t.device().is_cpu()) return mpi_->broadcast_async(t, root);
    check_tensor(t);
    cuda::DeviceGuard guard(device_);
    after_compute();
    check_nccl(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_), rank_,
               "ncclBroadcast");
    return done_event();
  }

  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_->abort(code);
    std::_Exit(code);  // not reached: the wrapped abort does not return
  }

 protected:
  std::vector<int> silent_ranks(double seconds) override {
    // Over MPI, via a forwarding call: the wrapped communicator's roll call.
    struct Access : Communicator {
      static std::vector<int> call(Communicator& c, double s) { return (c.*(&Access::silent_ranks))(s); }
    };
    return Access::call(*mpi_, seconds);
  }

 private:
  void check_tensor(const Tensor& t) const {
    FG_ASSERT(t.device().is_cuda() && t.device().index == device_ && t.dtype() == DType::F32 && t.is_contiguous(),
              "NCCL collective: needs a contiguous f32 tensor on cuda:" << device_ << ", got " << t.str());
  }
  void after_compute() {
    cudaEvent_t ready;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(ready, cuda::stream(device_)), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);  // released once the wait has been queued
  }
  std::unique_ptr<Request> done_event() {
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    return std::make_unique<NcclRequest>(done, comm_, rank_);
  }

  std::unique_ptr<Communicator> mpi_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi, const Device& device) {
  return std::make_unique<NcclCommunicator>(std::move(mpi), device);
}

}  // namespace fg::dist

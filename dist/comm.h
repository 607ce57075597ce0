// Communicators for data-parallel training: how a process learns it is one rank of several, and the collectives
// the training needs (broadcast, all-reduce, barrier) on MPI (CPU tensors and host buffers) and NCCL (CUDA
// tensors; its unique id travels over MPI). See docs/distributed.md.
//
// Promises:
// - detect_launch() reads only the environment the launchers set (Open MPI's mpirun, Slurm's srun, PMI); a process
//   started without them is a single process and never initialises MPI, so filmgrad runs as it did before.
// - Collectives are called in the same order on every rank (the caller's duty, as with MPI itself).
// - No wait blocks forever: Communicator::wait polls with a deadline (FG_DIST_TIMEOUT seconds, default 600); past
//   it, a roll call names the ranks that no longer answer and the wait throws fg::Error saying so. A rank that ends
//   with an error calls abort(), which ends the others through the launcher.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fg::dist {

struct Launch {
  bool launched = false;  // started by an MPI launcher (even with a single rank)
  std::string launcher;   // "mpirun", "srun" or "pmi"; "" when not launched
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;  // among the ranks on this machine: picks the GPU
};

// From OMPI_COMM_WORLD_*, SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (inside an srun step), PMI_RANK/PMI_SIZE.
Launch detect_launch();

// A collective in flight.
class Request {
 public:
  virtual ~Request() = default;
  virtual bool test() = 0;  // true once complete; also drives the transfer forward
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  virtual const char* backend() const = 0;  // "mpi" or "nccl"

  // Host buffers (always over MPI).
  virtual std::unique_ptr<Request> all_reduce_sum_async(double* values, int64_t n) = 0;
  virtual std::unique_ptr<Request> all_gather_async(const uint64_t* mine, uint64_t* all) = 0;  // all: size() values
  virtual std::unique_ptr<Request> broadcast_async(void* bytes, int64_t n, int root) = 0;
  virtual std::unique_ptr<Request> barrier_async() = 0;
  // F32 tensors, contiguous, in place: CPU tensors over MPI; CUDA tensors over NCCL (the NCCL backend).
  virtual std::unique_ptr<Request> all_reduce_sum_async(Tensor& t) = 0;
  virtual std::unique_ptr<Request> broadcast_async(Tensor& t, int root) = 0;

  // Waits with the deadline; `what` names the collective in the error (e.g. "the gradient all-reduce").
  void wait(Request& r, const std::string& what);
  void all_reduce_sum(double* values, int64_t n, const std::string& what);
  void all_reduce_sum(Tensor& t, const std::string& what);
  void broadcast(Tensor& t, int root, const std::string& what);
  void broadcast_bytes(void* bytes, int64_t n, int root, const std::string& what);
  std::vector<uint64_t> all_gather(uint64_t mine, const std::string& what);
  void barrier(const std::string& what);

  // Ends every rank now (MPI_Abort): for a rank that cannot go on; the launcher stops the others.
  [[noreturn]] virtual void abort(int code) = 0;

  double timeout_seconds() const { return timeout_s_; }
  void set_timeout_seconds(double s) { timeout_s_ = s; }

 protected:
  // Which ranks do not answer a short exchange of messages on a channel of their own (called after a timeout).
  virtual std::vector<int> silent_ranks(double seconds) = 0;

  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double timeout_s_ = 600;
};

// The communicator for a launched process: MPI, plus NCCL when `device` is CUDA. fg::Error when this filmgrad was
// built without MPI (or, for CUDA, without NCCL). Initialises MPI; the communicator's destructor finalises it.
std::unique_ptr<Communicator> make_communicator(const Launch& launch, const Device& device);

// FG_DIST_TIMEOUT when set (seconds > 0), else 600. fg::Error for a value that is not a positive number.
double timeout_from_environment();

}  // namespace fg::dist

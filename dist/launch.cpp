// Launch detection, the waiting with a deadline shared by every backend, and the choice of backend.
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "dist/comm.h"

namespace fg::dist {

#ifdef FG_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(const Launch& launch);
#endif
#ifdef FG_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi, const Device& device);
#endif

namespace {

bool env_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return false;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 0) return false;
  out = int(n);
  return true;
}

}  // namespace

Launch detect_launch() {
  Launch l;
  if (env_int("OMPI_COMM_WORLD_SIZE", l.size) && env_int("OMPI_COMM_WORLD_RANK", l.rank)) {
    l.launcher = "mpirun";
    if (!env_int("OMPI_COMM_WORLD_LOCAL_RANK", l.local_rank)) l.local_rank = 0;
    if (!env_int("OMPI_COMM_WORLD_LOCAL_SIZE", l.local_size)) l.local_size = 1;
  } else if (std::getenv("SLURM_STEP_ID") != nullptr && env_int("SLURM_NTASKS", l.size) &&
             env_int("SLURM_PROCID", l.rank)) {
    // Inside an srun step (a batch script's own shell has SLURM_NTASKS too, but no step, and is not a rank).
    l.launcher = "srun";
    if (!env_int("SLURM_LOCALID", l.local_rank)) l.local_rank = 0;
    int tasks_on_node = 1;
    l.local_size = env_int("SLURM_NTASKS_PER_NODE", tasks_on_node) ? tasks_on_node : 1;
  } else if (env_int("PMI_SIZE", l.size) && env_int("PMI_RANK", l.rank)) {
    l.launcher = "pmi";  // MPICH's hydra and others
    if (!env_int("MPI_LOCALRANKID", l.local_rank)) l.local_rank = 0;
    if (!env_int("MPI_LOCALNRANKS", l.local_size)) l.local_size = 1;
  } else {
    return Launch();
  }
  l.launched = l.size >= 1 && l.rank < l.size;
  if (!l.launched) return Launch();
  return l;
}

double timeout_from_environment() {
  const char* v = std::getenv("FG_DIST_TIMEOUT");
  if (v == nullptr || *v == '\0') return 600;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  FG_CHECK(*end == '\0' && s > 0, "FG_DIST_TIMEOUT='" << v << "' is not a positive number of seconds");
  return s;
}

void Communicator::wait(Request& r, const std::string& what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  // Busy for the first moments (most collectives finish within them), then polling gently so a rank waiting for
  // a slow one (rank 0 writing a checkpoint) leaves the cores to the others.
  int spins = 0;
  while (!r.test()) {
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_s_) {
      const std::vector<int> silent = silent_ranks(std::min(10.0, std::max(1.0, timeout_s_ / 2)));
      std::ostringstream os;
      os << what << " did not complete in " << timeout_s_ << " s (FG_DIST_TIMEOUT): ";
      if (silent.empty()) {
        os << "every rank still answers, so they are out of step (a bug) or one is far slower";
      } else {
        os << (silent.size() == 1 ? "rank " : "ranks ");
        for (size_t i = 0; i < silent.size(); ++i) os << (i ? ", " : "") << silent[i];
        os << (silent.size() == 1 ? " no longer answers" : " no longer answer")
           << " (killed, crashed or hung); see its own output";
      }
      throw Error(os.str());
    }
    if (++spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(spins > 100000 ? 1000 : 50));
  }
}

void Communicator::all_reduce_sum(double* values, int64_t n, const std::string& what) {
  wait(*all_reduce_sum_async(values, n), what);
}

void Communicator::all_reduce_sum(Tensor& t, const std::string& what) {
  wait(*all_reduce_sum_async(t), what);
}

void Communicator::broadcast(Tensor& t, int root, const std::string& what) {
  wait(*broadcast_async(t, root), what);
}

void Communicator::broadcast_bytes(void* bytes, int64_t n, int root, const std::string& what) {
  wait(*broadcast_async(bytes, n, root), what);
}

std::vector<uint64_t> Communicator::all_gather(uint64_t mine, const std::string& what) {
  std::vector<uint64_t> all(size_t(size_), 0);
  wait(*all_gather_async(&mine, all.data()), what);
  return all;
}

void Communicator::barrier(const std::string& what) {
  wait(*barrier_async(), what);
}

std::unique_ptr<Communicator> make_communicator(const Launch& launch, const Device& device) {
  FG_CHECK(launch.launched, "make_communicator: the process was not started by an MPI launcher");
#ifdef FG_WITH_MPI
  std::unique_ptr<Communicator> mpi = make_mpi_communicator(launch);
  if (!device.is_cuda()) return mpi;
#ifdef FG_WITH_NCCL
  return make_nccl_communicator(std::move(mpi), device);
#else
  throw Error("rank " + std::to_string(launch.rank) +
              ": data-parallel training on CUDA needs NCCL, and this filmgrad was built without it; install "
              "NVIDIA's wheel (pip install nvidia-nccl-cu13) and rebuild, or train with --device cpu");
#endif
#else
  (void)device;
  throw Error("this process was started by " + launch.launcher + " as rank " + std::to_string(launch.rank) + " of " +
              std::to_string(launch.size) +
              ", but this filmgrad was built without MPI; install libopenmpi-dev and rebuild, or run it without " +
              launch.launcher);
#endif
}

}  // namespace fg::dist

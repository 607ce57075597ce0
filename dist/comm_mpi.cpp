// The MPI backend: every collective is non-blocking (MPI_I*), so Communicator::wait can keep a deadline and the
// gradient buckets overlap the backward pass. Errors return instead of aborting (MPI_ERRORS_RETURN), so a failed
// collective becomes an fg::Error naming this rank. The roll call after a timeout runs on a communicator of its
// own, so the messages it sends cannot match a collective that is still pending.
#include <mpi.h>

#include <chrono>
#include <climits>
#include <thread>

#include "dist/comm.h"

namespace fg::dist {

namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, size_t(len));
}

class MpiRequest : public Request {
 public:
  MpiRequest(MPI_Request r, int rank, const char* op) : request_(r), rank_(rank), op_(op) {}
  ~MpiRequest() override {
    // A request abandoned by an error cannot be freed safely while MPI may still write its buffer; the process is
    // about to end (the error aborts the run), so it is left to MPI_Abort.
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    const int rc = MPI_Test(&request_, &flag, MPI_STATUS_IGNORE);
    FG_CHECK(rc == MPI_SUCCESS,
             op_ << " failed in MPI: " << mpi_error_text(rc) << " (another rank probably ended; see its output)");
    done_ = flag != 0;
    return done_;
  }

 private:
  MPI_Request request_;
  int rank_;
  const char* op_;
  bool done_ = false;
};

int checked_count(int64_t n, const char* what) {
  FG_CHECK(n >= 0 && n <= INT_MAX, what << ": " << n << " elements is more than one MPI call takes");
  return int(n);
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(const Launch& launch) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      // FUNNELED: only the training thread calls MPI (the loader's threads never do).
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owns_mpi_ = true;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &roll_call_comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(roll_call_comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    FG_CHECK(rank_ == launch.rank && size_ == launch.size,
             "MPI says this is rank " << rank_ << " of " << size_ << " but " << launch.launcher << " set rank "
                                      << launch.rank << " of " << launch.size
                                      << "; was filmgrad built against another MPI than the launcher's?");
    // The rank among those sharing this machine's memory: the launcher's own variable may be absent (plain PMI).
    MPI_Comm local;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    timeout_s_ = timeout_from_environment();
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&roll_call_comm_);
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }

  const char* backend() const override { return "mpi"; }

  std::unique_ptr<Request> all_reduce_sum_async(double* values, int64_t n) override {
    MPI_Request r;
    check(MPI_Iallreduce(MPI_IN_PLACE, values, checked_count(n, "all-reduce"), MPI_DOUBLE, MPI_SUM, comm_, &r),
          "all-reduce");
    return std::make_unique<MpiRequest>(r, rank_, "an all-reduce");
  }

  std::unique_ptr<Request> all_gather_async(const uint64_t* mine, uint64_t* all) override {
    MPI_Request r;
    check(MPI_Iallgather(mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, comm_, &r), "all-gather");
    return std::make_unique<MpiRequest>(r, rank_, "an all-gather");
  }

  std::unique_ptr<Request> broadcast_async(void* bytes, int64_t n, int root) override {
    MPI_Request r;
    check(MPI_Ibcast(bytes, checked_count(n, "broadcast"), MPI_BYTE, root, comm_, &r), "broadcast");
    return std::make_unique<MpiRequest>(r, rank_, "a broadcast");
  }

  std::unique_ptr<Request> barrier_async() override {
    MPI_Request r;
    check(MPI_Ibarrier(comm_, &r), "barrier");
    return std::make_unique<MpiRequest>(r, rank_, "a barrier");
  }

  std::unique_ptr<Request> all_reduce_sum_async(Tensor& t) override {
    check_host_f32(t, "all-reduce");
    MPI_Request r;
    check(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), checked_count(t.numel(), "all-reduce"), MPI_FLOAT, MPI_SUM, comm_,
                         &r),
          "all-reduce");
    return std::make_unique<MpiRequest>(r, rank_, "an all-reduce");
  }

  std::unique_ptr<Request> broadcast_async(Tensor& t, int root) override {
    FG_ASSERT(t.device().is_cpu() && t.is_contiguous(),
              "MPI broadcast: needs a contiguous CPU tensor, got " << t.str());
    return broadcast_async(t.raw_data(), int64_t(t.nbytes()), root);
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps the promise if an implementation did
  }

 protected:
  std::vector<int> silent_ranks(double seconds) override {
    // Everyone sends its rank to everyone; who is not heard from within `seconds` is silent. A rank that is alive
    // is stuck in the same collective, times out within about the same moment and takes part.
    std::vector<int> in(size_t(size_), -1);
    std::vector<MPI_Request> recvs(size_t(size_), MPI_REQUEST_NULL), sends(size_t(size_), MPI_REQUEST_NULL);
    constexpr int kTag = 7007;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Irecv(&in[size_t(r)], 1, MPI_INT, r, kTag, roll_call_comm_, &recvs[size_t(r)]);
      MPI_Isend(&rank_, 1, MPI_INT, r, kTag, roll_call_comm_, &sends[size_t(r)]);
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<bool> heard(size_t(size_), false);
    heard[size_t(rank_)] = true;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
      bool all = true;
      for (int r = 0; r < size_; ++r) {
        if (heard[size_t(r)]) continue;
        int flag = 0;
        if (MPI_Test(&recvs[size_t(r)], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) heard[size_t(r)] = true;
        all = all && heard[size_t(r)];
      }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r)
      if (!heard[size_t(r)]) silent.push_back(r);
    return silent;
  }

 private:
  void check(int rc, const char* op) const {
    FG_CHECK(rc == MPI_SUCCESS, "starting the " << op << " failed in MPI: " << mpi_error_text(rc));
  }
  static void check_host_f32(const Tensor& t, const char* op) {
    FG_ASSERT(t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous(),
              "MPI " << op << ": needs a contiguous f32 CPU tensor, got " << t.str());
  }

  MPI_Comm comm_ = MPI_COMM_NULL, roll_call_comm_ = MPI_COMM_NULL;
  bool owns_mpi_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const Launch& launch) {
  return std::make_unique<MpiCommunicator>(launch);
}

}  // namespace fg::dist

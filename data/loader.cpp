// The threaded DataLoader and collate of data/dataset.h.
//
// Ordered delivery with bounded memory: batch numbers are handed to workers in increasing order, and a worker may
// take batch b only while b < (the next batch next() will return) + workers * prefetch, so however fast the
// workers are, no more than workers * prefetch batches exist at once, and next() always waits for exactly the
// batch it must return. Which worker assembled a batch cannot change it: a batch is a pure function of
// (dataset, epoch, order, batch number), so 0, 1 or 8 workers give the same bytes.
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "data/dataset.h"
#include "tensor/error.h"

namespace fg::data {

namespace {

// Stacks one field of every sample into a new (B, ...) tensor.
Tensor stack_field(const std::vector<Sample>& samples, Tensor Sample::*field, const char* what, bool pin_memory) {
  const Tensor& first = samples[0].*field;
  for (const Sample& s : samples) {
    const Tensor& t = s.*field;
    FG_CHECK(t.defined() && t.shape() == first.shape(),
             "cannot batch the " << what << " of '" << samples[0].name << "' " << shape_str(first.shape())
                                 << " with that of '" << s.name << "' "
                                 << (t.defined() ? shape_str(t.shape()) : std::string("(none)"))
                                 << "; give a sample size, or a batch size of 1 for full-size images");
  }
  Shape shape = first.shape();
  shape.insert(shape.begin(), int64_t(samples.size()));
  // Page-locked when asked (and CUDA is built with a device present; otherwise Tensor::empty_pinned gives ordinary
  // host memory), so the trainer's copy to the GPU needs no staging buffer.
  Tensor out = pin_memory ? Tensor::empty_pinned(shape, DType::F32) : Tensor::empty(shape, DType::F32);
  for (size_t i = 0; i < samples.size(); ++i) out.select(0, int64_t(i)).copy_(samples[i].*field);
  return out;
}

}  // namespace

Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices, bool pin_memory) {
  FG_ASSERT(!samples.empty(), "collate needs at least one sample");
  FG_ASSERT(indices.size() == samples.size(), "collate needs one index per sample");
  Batch b;
  b.input = stack_field(samples, &Sample::input, "input", pin_memory);
  b.target = stack_field(samples, &Sample::target, "target", pin_memory);
  b.mask = stack_field(samples, &Sample::mask, "mask", pin_memory);
  b.clean = stack_field(samples, &Sample::clean, "clean image", pin_memory);
  for (const Sample& s : samples) b.names.push_back(s.name);
  b.indices = indices;
  return b;
}

struct DataLoader::Impl {
  const RestorationDataset& dataset;
  LoaderOptions options;
  std::vector<std::thread> threads;

  std::mutex mutex;
  std::condition_variable work_cv;   // workers wait here for a batch number they may take
  std::condition_variable ready_cv;  // next() waits here for its batch
  bool stopping = false;
  bool started = false;
  uint64_t generation = 0;  // bumped by start_epoch: what workers finish for an abandoned epoch is dropped
  int64_t epoch = 0;
  std::shared_ptr<const std::vector<int64_t>> order;
  int64_t next_take = 0;  // the next batch number a worker takes
  int64_t next_give = 0;  // the batch number next() returns next
  int64_t end = 0;        // batches in the epoch
  struct Result {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  std::map<int64_t, Result> ready;

  Impl(const RestorationDataset& d, const LoaderOptions& o) : dataset(d), options(o) {}

  int64_t capacity() const { return int64_t(options.workers) * options.prefetch; }

  int64_t batches_per_epoch() const {
    const int64_t n = dataset.size(), B = options.batch_size;
    return options.drop_last ? n / B : (n + B - 1) / B;
  }

  Batch assemble(int64_t b, int64_t ep, const std::vector<int64_t>& ord) const {
    const int64_t batch_start = b * options.batch_size;
    const int64_t batch_stop = std::min<int64_t>(batch_start + options.batch_size, int64_t(ord.size()));
    const int64_t part = (batch_stop - batch_start) / options.shard_count;
    const int64_t start = batch_start + options.shard_index * part, stop = start + part;
    std::vector<Sample> samples;
    std::vector<int64_t> indices;
    for (int64_t i = start; i < stop; ++i) {
      indices.push_back(ord[size_t(i)]);
      samples.push_back(dataset.get(ord[size_t(i)], ep));
    }
    return collate(samples, indices, options.pin_memory);
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      work_cv.wait(lock,
                   [&] { return stopping || (started && next_take < end && next_take < next_give + capacity()); });
      if (stopping) return;
      const int64_t b = next_take++;
      const uint64_t g = generation;
      const int64_t ep = epoch;
      const std::shared_ptr<const std::vector<int64_t>> ord = order;
      lock.unlock();
      Result r;
      try {
        r.batch = assemble(b, ep, *ord);
      } catch (...) {
        r.error = std::current_exception();
      }
      lock.lock();
      if (g == generation && !stopping) {
        ready.emplace(b, std::move(r));
        ready_cv.notify_all();
      }
    }
  }
};

DataLoader::DataLoader(const RestorationDataset& dataset, const LoaderOptions& options)
    : impl_(std::make_unique<Impl>(dataset, options)) {
  FG_CHECK(options.batch_size >= 1, "the batch size must be at least 1, got " << options.batch_size);
  FG_CHECK(options.workers >= 0, "the number of loader workers must be 0 or more, got " << options.workers);
  FG_CHECK(options.shard_count >= 1 && options.shard_index >= 0 && options.shard_index < options.shard_count &&
               options.batch_size % options.shard_count == 0 && (options.drop_last || options.shard_count == 1),
           "the loader's shard " << options.shard_index << " of " << options.shard_count
                                 << " does not split batches of " << options.batch_size << " evenly");
  FG_CHECK(options.prefetch >= 1,
           "the loader's prefetch must be at least 1 batch per worker, got " << options.prefetch);
  for (int i = 0; i < options.workers; ++i) impl_->threads.emplace_back([this] { impl_->work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  impl_->ready_cv.notify_all();
  for (std::thread& t : impl_->threads) t.join();
}

int64_t DataLoader::batches_per_epoch() const {
  return impl_->batches_per_epoch();
}

void DataLoader::start_epoch(int64_t epoch, int64_t skip) {
  const int64_t total = impl_->batches_per_epoch();
  FG_CHECK(skip >= 0 && skip <= total, "cannot skip " << skip << " batches of an epoch of " << total
                                                      << " batches; is the checkpoint from "
                                                      << "another data set or batch size?");
  std::vector<int64_t> ord;
  if (impl_->options.shuffle) {
    Generator gen(mix_seed(impl_->options.seed, uint64_t(epoch), 0, SeedPurpose::SHUFFLE));
    ord = random_permutation(impl_->dataset.size(), gen);
  } else {
    ord.resize(size_t(impl_->dataset.size()));
    for (size_t i = 0; i < ord.size(); ++i) ord[i] = int64_t(i);
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    ++impl_->generation;
    impl_->ready.clear();
    impl_->epoch = epoch;
    impl_->order = std::make_shared<const std::vector<int64_t>>(std::move(ord));
    impl_->next_take = impl_->next_give = skip;
    impl_->end = total;
    impl_->started = true;
  }
  impl_->work_cv.notify_all();
}

std::optional<Batch> DataLoader::next() {
  Impl& m = *impl_;
  if (m.options.workers == 0) {
    if (!m.started || m.next_give >= m.end) return std::nullopt;
    const int64_t b = m.next_give++;  // advanced first: after an error, the next call goes on with the next batch
    return m.assemble(b, m.epoch, *m.order);
  }
  Impl::Result r;
  {
    std::unique_lock<std::mutex> lock(m.mutex);
    if (!m.started || m.next_give >= m.end) return std::nullopt;
    m.ready_cv.wait(lock, [&] { return m.ready.count(m.next_give) != 0; });
    auto it = m.ready.find(m.next_give);
    r = std::move(it->second);
    m.ready.erase(it);
    ++m.next_give;
  }
  m.work_cv.notify_all();
  if (r.error) std::rethrow_exception(r.error);
  return std::move(r.batch);
}

}  // namespace fg::data

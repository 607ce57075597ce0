// The threaded DataLoader and collate (data/dataset.h): the same batches for 0, 1 and 3 workers, a shuffle
// permutation per epoch, drop_last, skip (resume mid-epoch), a worker's error re-thrown naming the file, restarts
// mid-epoch, and a destructor that returns mid-epoch. Small PNGs written into a temporary folder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "data/dataset.h"
#include "data/image_io.h"
#include "tests/support/test_util.h"

namespace fg::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImages = 10;

class Loader : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("fg_loader_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    for (int64_t i = 0; i < kImages; ++i) {
      const Tensor t = fg::test::random_tensor({3, 20 + i, 24}, uint64_t(100 + i), DType::F32, 0.0, 1.0);
      write_image((*dir_ / ("img" + std::to_string(i) + ".png")).string(), make_image(t));
    }
    std::ofstream(*dir_ / "broken.png") << "not an image at all";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }
  static std::vector<std::string> good_paths() {
    std::vector<std::string> p;
    for (int64_t i = 0; i < kImages; ++i) p.push_back("img" + std::to_string(i) + ".png");
    return p;
  }
  static DatasetOptions dataset_options() {
    DatasetOptions o;
    o.size = 16;
    o.train = true;  // random crops and fresh damage per epoch: batches depend on the epoch
    o.seed = 5;
    return o;
  }
  static std::vector<Batch> epoch(DataLoader& loader, int64_t e, int64_t skip = 0) {
    loader.start_epoch(e, skip);
    std::vector<Batch> out;
    while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
    return out;
  }
  static fs::path* dir_;
};
fs::path* Loader::dir_ = nullptr;

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

::testing::AssertionResult same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " batches";
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].indices != b[i].indices || a[i].names != b[i].names)
      return ::testing::AssertionFailure() << "batch " << i << " holds other samples";
    if (!same(a[i].input, b[i].input) || !same(a[i].target, b[i].target) || !same(a[i].mask, b[i].mask) ||
        !same(a[i].clean, b[i].clean))
      return ::testing::AssertionFailure() << "batch " << i << " differs in its pixels";
  }
  return ::testing::AssertionSuccess();
}

std::vector<int64_t> all_indices(const std::vector<Batch>& batches) {
  std::vector<int64_t> out;
  for (const Batch& b : batches) out.insert(out.end(), b.indices.begin(), b.indices.end());
  return out;
}

TEST_F(Loader, SameBatchesWhateverTheWorkers) {
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 3;
  lo.shuffle = true;
  lo.seed = 9;
  lo.workers = 0;
  DataLoader serial(ds, lo);
  const std::vector<Batch> ref = epoch(serial, 1);
  ASSERT_EQ(ref.size(), 4u);
  EXPECT_EQ(ref[0].input.shape(), (Shape{3, 3, 16, 16}));
  EXPECT_EQ(ref[0].target.shape(), (Shape{3, 3, 16, 16}));
  EXPECT_EQ(ref[0].mask.shape(), (Shape{3, 1, 16, 16}));
  EXPECT_EQ(ref[3].input.shape(), (Shape{1, 3, 16, 16}));  // 10 = 3 + 3 + 3 + 1
  for (int workers : {1, 3}) {
    lo.workers = workers;
    lo.prefetch = workers == 1 ? 1 : 2;
    DataLoader parallel(ds, lo);
    EXPECT_TRUE(same_batches(ref, epoch(parallel, 1))) << workers << " workers";
  }
  // A batch is its samples, stacked.
  const Sample s = ds.get(ref[1].indices[2], 1);
  EXPECT_TRUE(same(ref[1].input.select(0, 2), s.input));
  EXPECT_TRUE(same(ref[1].clean.select(0, 2), s.clean));
  EXPECT_EQ(ref[1].names[2], s.name);
}

TEST_F(Loader, ShardsOfEveryBatchMakeTheWholeBatch) {
  // Data-parallel ranks: shard r of 2 is the r-th half of every batch the unsharded loader gives, pixels included.
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.seed = 4;
  lo.workers = 1;
  DataLoader whole(ds, lo);
  const std::vector<Batch> ref = epoch(whole, 2);
  ASSERT_EQ(ref.size(), 2u);  // 10 samples, batches of 4, the last partial one dropped
  for (int64_t r = 0; r < 2; ++r) {
    lo.shard_index = r;
    lo.shard_count = 2;
    DataLoader shard(ds, lo);
    EXPECT_EQ(shard.batches_per_epoch(), whole.batches_per_epoch());
    const std::vector<Batch> got = epoch(shard, 2);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t b = 0; b < ref.size(); ++b) {
      EXPECT_EQ(got[b].indices,
                std::vector<int64_t>(ref[b].indices.begin() + 2 * r, ref[b].indices.begin() + 2 * r + 2));
      EXPECT_TRUE(same(got[b].input, ref[b].input.slice(0, 2 * r, 2 * r + 2)));
      EXPECT_TRUE(same(got[b].target, ref[b].target.slice(0, 2 * r, 2 * r + 2)));
    }
  }
  // A batch that does not split evenly is refused.
  lo.shard_index = 0;
  lo.shard_count = 3;
  EXPECT_NE(fg::test::error_of([&] { DataLoader bad(ds, lo); }).find("does not split batches of 4 evenly"),
            std::string::npos);
}

TEST_F(Loader, ShufflePermutationPerEpoch) {
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 2;
  DataLoader plain(ds, lo);
  std::vector<int64_t> identity(kImages);
  for (int64_t i = 0; i < kImages; ++i) identity[size_t(i)] = i;
  EXPECT_EQ(all_indices(epoch(plain, 0)), identity);
  EXPECT_EQ(all_indices(epoch(plain, 3)), identity);

  lo.shuffle = true;
  lo.seed = 1;
  DataLoader shuffled(ds, lo);
  const std::vector<int64_t> e0 = all_indices(epoch(shuffled, 0)), e1 = all_indices(epoch(shuffled, 1));
  std::vector<int64_t> sorted0 = e0, sorted1 = e1;
  std::sort(sorted0.begin(), sorted0.end());
  std::sort(sorted1.begin(), sorted1.end());
  EXPECT_EQ(sorted0, identity) << "an epoch must see every sample once";
  EXPECT_EQ(sorted1, identity);
  EXPECT_NE(e0, e1) << "each epoch gets its own order";
  EXPECT_NE(e0, identity);
  EXPECT_EQ(all_indices(epoch(shuffled, 0)), e0) << "the order is a function of (seed, epoch)";
  Generator g(mix_seed(1, 1, 0, SeedPurpose::SHUFFLE));
  EXPECT_EQ(e1, random_permutation(kImages, g)) << "the documented permutation";
}

TEST_F(Loader, DropLastAndBatchesPerEpoch) {
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 1;
  DataLoader keep(ds, lo);
  EXPECT_EQ(keep.batches_per_epoch(), 3);
  const std::vector<Batch> k = epoch(keep, 0);
  ASSERT_EQ(k.size(), 3u);
  EXPECT_EQ(k[2].input.size(0), 2);
  lo.drop_last = true;
  DataLoader drop(ds, lo);
  EXPECT_EQ(drop.batches_per_epoch(), 2);
  const std::vector<Batch> d = epoch(drop, 0);
  ASSERT_EQ(d.size(), 2u);
  for (const Batch& b : d) EXPECT_EQ(b.input.size(0), 4);
  lo.batch_size = 11;
  DataLoader none(ds, lo);
  EXPECT_EQ(none.batches_per_epoch(), 0);
  EXPECT_TRUE(epoch(none, 0).empty());
}

TEST_F(Loader, SkipGivesTheTailOfTheEpoch) {
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 2;
  lo.shuffle = true;
  lo.workers = 2;
  DataLoader loader(ds, lo);
  const std::vector<Batch> full = epoch(loader, 2);
  ASSERT_EQ(full.size(), 5u);
  const std::vector<Batch> tail = epoch(loader, 2, 3);
  EXPECT_TRUE(same_batches(std::vector<Batch>(full.begin() + 3, full.end()), tail));
  EXPECT_TRUE(epoch(loader, 2, 5).empty());
  EXPECT_NE(fg::test::error_of([&] { loader.start_epoch(2, 6); }).find("skip"), std::string::npos);
  // A fresh loader resumed mid-epoch (what resuming a run does).
  lo.workers = 0;
  DataLoader resumed(ds, lo);
  EXPECT_TRUE(same_batches(std::vector<Batch>(full.begin() + 3, full.end()), epoch(resumed, 2, 3)));
}

TEST_F(Loader, WorkerErrorsAreRethrownNamingTheFile) {
  std::vector<std::string> paths = good_paths();
  paths.insert(paths.begin() + 5, "broken.png");  // sample 5: batch 2 of batches of 2
  const RestorationDataset ds(dir_->string(), paths, dataset_options());
  for (int workers : {0, 3}) {
    LoaderOptions lo;
    lo.batch_size = 2;
    lo.workers = workers;
    DataLoader loader(ds, lo);
    loader.start_epoch(0);
    int good = 0, bad = 0;
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const std::string e = fg::test::error_of([&] { ASSERT_TRUE(loader.next().has_value()); });
      if (e.empty()) {
        ++good;
      } else {
        ++bad;
        EXPECT_EQ(b, 2) << e;
        EXPECT_NE(e.find("broken.png"), std::string::npos) << e;
      }
    }
    EXPECT_EQ(bad, 1) << workers << " workers";
    EXPECT_EQ(good, 5) << workers << " workers: the loader goes on after an error";
    EXPECT_FALSE(loader.next().has_value());
  }
}

TEST_F(Loader, RestartsAndDestructionMidEpochDoNotHang) {
  const RestorationDataset ds(dir_->string(), good_paths(), dataset_options());
  LoaderOptions lo;
  lo.batch_size = 1;
  lo.workers = 3;
  lo.prefetch = 1;
  {
    DataLoader never_started(ds, lo);
    EXPECT_FALSE(never_started.next().has_value());
  }
  {
    DataLoader started(ds, lo);
    started.start_epoch(0);
  }
  std::vector<Batch> ref;
  {
    DataLoader loader(ds, lo);
    ref = epoch(loader, 4);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
    // Abandon epoch 0 mid-way: epoch 4 again must come out whole and unchanged.
    EXPECT_TRUE(same_batches(ref, epoch(loader, 4)));
    loader.start_epoch(1);
    ASSERT_TRUE(loader.next().has_value());
  }  // destroyed with the workers mid-epoch
  auto heap = std::make_unique<DataLoader>(ds, lo);
  heap->start_epoch(0);
  heap.reset();
}

TEST_F(Loader, CollateChecksShapesAndBadOptionsAreErrors) {
  DatasetOptions o = dataset_options();
  o.size = 0;  // whole images of different heights cannot share a batch
  const RestorationDataset ds(dir_->string(), good_paths(), o);
  const std::string e = fg::test::error_of([&] { collate({ds.get(0, 0), ds.get(1, 0)}, {0, 1}); });
  EXPECT_NE(e.find("img0.png"), std::string::npos) << e;
  EXPECT_NE(e.find("img1.png"), std::string::npos) << e;
  const Batch one = collate({ds.get(3, 0)}, {3}, /*pin_memory=*/true);
  EXPECT_EQ(one.input.shape(), (Shape{1, 3, 23, 24}));
  EXPECT_EQ(one.indices, std::vector<int64_t>{3});

  LoaderOptions lo;
  lo.batch_size = 0;
  EXPECT_NE(fg::test::error_of([&] { DataLoader l(ds, lo); }), "");
  lo.batch_size = 1;
  lo.workers = -1;
  EXPECT_NE(fg::test::error_of([&] { DataLoader l(ds, lo); }), "");
  lo.workers = 1;
  lo.prefetch = 0;
  EXPECT_NE(fg::test::error_of([&] { DataLoader l(ds, lo); }), "");
}

}  // namespace
}  // namespace fg::data

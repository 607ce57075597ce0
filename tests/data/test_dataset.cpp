// Datasets (data/dataset.h): the 8:1:1 split and its CSVs, the seed mixer, and RestorationDataset samples (shapes
// per task, value ranges, fixed vs fresh damage, determinism across calls, caches and threads, grey and RGBA
// images, full-size samples, bounded cache, errors naming the image). Images are small PNGs written into a
// temporary folder by the test itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "data/dataset.h"
#include "data/image_io.h"
#include "tests/support/test_util.h"

namespace fg::data {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(fs::temp_directory_path() / ("fg_dataset_" + tag + "_" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& p) const { return path_ / p; }

 private:
  fs::path path_;
};

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "";
}

// A smooth random colour image (C, H, W) in [0, 1], written as an 8-bit PNG.
void write_png(const fs::path& p, int64_t C, int64_t H, int64_t W, uint64_t seed) {
  fs::create_directories(p.parent_path());
  write_image(p.string(), make_image(fg::test::random_tensor({C, H, W}, seed, DType::F32, 0.0, 1.0)));
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

bool same_sample(const Sample& a, const Sample& b) {
  return same(a.input, b.input) && same(a.target, b.target) && same(a.mask, b.mask) && same(a.clean, b.clean) &&
         a.name == b.name;
}

void expect_in_unit_range(const Tensor& t, const std::string& what) {
  const std::vector<double> v = t.to_vector();
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  EXPECT_GE(*lo, 0.0) << what;
  EXPECT_LE(*hi, 1.0) << what;
}

// ---- seeds ----

TEST(Seeds, MixSeedIsTheDocumentedSplitmixFold) {
  // Reference values from the formula in dataset.h, computed with Python integers (arbitrary precision, masked).
  EXPECT_EQ(mix_seed(0, 0, 0, SeedPurpose::SAMPLE), 0x2a4f111b3be57715ull);
  EXPECT_EQ(mix_seed(42, 3, 7, SeedPurpose::DUST_PATTERN), 0x4d2d5efff94c3f48ull);
  EXPECT_NE(mix_seed(1, 0, 0, SeedPurpose::SAMPLE), mix_seed(1, 0, 0, SeedPurpose::SHUFFLE));
  EXPECT_NE(mix_seed(1, 0, 1, SeedPurpose::SAMPLE), mix_seed(1, 1, 0, SeedPurpose::SAMPLE));
}

TEST(Seeds, RandomPermutationIsAPermutationFixedByTheGenerator) {
  Generator g1(5), g2(5), g3(6);
  const std::vector<int64_t> a = random_permutation(100, g1), b = random_permutation(100, g2),
                             c = random_permutation(100, g3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[size_t(i)], i);
  Generator g0(0);
  EXPECT_TRUE(random_permutation(0, g0).empty());
  EXPECT_EQ(random_permutation(1, g0), std::vector<int64_t>{0});
}

// ---- listing and the split ----

TEST(Split, ListImagesSkipsHiddenAndNonImagesAndSorts) {
  TempDir dir("list");
  for (const char* f : {"b.png", "a.JPG", "sub/c.tif", "sub/deeper/d.jpeg", ".hidden.png", ".cache/e.png", "notes.txt",
                        "f.bmp", "g.tga"})
    touch(dir / f);
  fs::create_directories(dir / "empty_folder.png");  // a folder with an image-like name is not an image
  const std::vector<std::string> got = list_images(dir.str());
  EXPECT_EQ(got, (std::vector<std::string>{"a.JPG", "b.png", "f.bmp", "g.tga", "sub/c.tif", "sub/deeper/d.jpeg"}));
  EXPECT_NE(fg::test::error_of([&] { list_images((dir / "missing").string()); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(fg::test::error_of([&] { list_images((dir / "notes.txt").string()); }).find("not a folder"),
            std::string::npos);
}

TEST(Split, EightOneOneWrittenAndReadBack) {
  for (int n : {10, 50, 3}) {
    TempDir dir("split" + std::to_string(n));
    for (int i = 0; i < n; ++i) touch(dir / ("img/" + std::to_string(1000 + i) + ".png"));
    const std::string root = (dir / "img").string(), csvs = (dir / "run").string();
    const Split s = load_or_create_split(root, csvs, 7);
    const int64_t expect_val = n == 3 ? 1 : n / 10;
    EXPECT_EQ(int64_t(s.validation.size()), expect_val) << n;
    EXPECT_EQ(int64_t(s.test.size()), expect_val) << n;
    EXPECT_EQ(int64_t(s.train.size()), n - 2 * expect_val) << n;
    EXPECT_EQ(s.root, root);
    std::set<std::string> all(s.train.begin(), s.train.end());
    all.insert(s.validation.begin(), s.validation.end());
    all.insert(s.test.begin(), s.test.end());
    EXPECT_EQ(int64_t(all.size()), n) << "parts overlap or miss images";
    for (const char* f : {"train.csv", "validation.csv", "test.csv"}) EXPECT_TRUE(fs::exists(fs::path(csvs) / f));
    EXPECT_EQ(read_split_csv((fs::path(csvs) / "test.csv").string()), s.test);

    // Read back: the same lists even with another seed (the CSVs win), and from a new listing.
    const Split again = load_or_create_split(root, csvs, 99);
    EXPECT_EQ(again.train, s.train);
    EXPECT_EQ(again.validation, s.validation);
    EXPECT_EQ(again.test, s.test);
    // Determinism: the same seed in a fresh folder gives the same split.
    const Split fresh = load_or_create_split(root, (dir / "run2").string(), 7);
    EXPECT_EQ(fresh.train, s.train);
    EXPECT_EQ(fresh.test, s.test);
    if (n == 50) {
      const Split other = load_or_create_split(root, (dir / "run3").string(), 8);
      EXPECT_NE(other.test, s.test) << "another seed should give another split";
    }
  }
}

TEST(Split, CsvQuotingRoundTrips) {
  TempDir dir("quote");
  const std::vector<std::string> names = {"plain.png", "comma,name.png", "quote\"name.png", " lead.png"};
  for (const std::string& n : names) touch(dir / ("img/" + n));
  const Split s = load_or_create_split((dir / "img").string(), (dir / "run").string(), 0);
  std::set<std::string> all(s.train.begin(), s.train.end());
  all.insert(s.validation.begin(), s.validation.end());
  all.insert(s.test.begin(), s.test.end());
  EXPECT_EQ(all, std::set<std::string>(names.begin(), names.end()));
  const Split again = load_or_create_split((dir / "img").string(), (dir / "run").string(), 0);
  EXPECT_EQ(again.train, s.train);
  EXPECT_EQ(again.validation, s.validation);
  EXPECT_EQ(again.test, s.test);
}

TEST(Split, BadCsvsAndFoldersAreErrors) {
  TempDir dir("splitbad");
  for (int i = 0; i < 10; ++i) touch(dir / ("img/" + std::to_string(i) + ".png"));
  const std::string root = (dir / "img").string(), csvs = (dir / "run").string();
  const Split s = load_or_create_split(root, csvs, 0);

  // A CSV naming a file that is gone.
  fs::remove(fs::path(root) / s.test[0]);
  std::string e = fg::test::error_of([&] { load_or_create_split(root, csvs, 0); });
  EXPECT_NE(e.find(s.test[0]), std::string::npos) << e;
  EXPECT_NE(e.find("test.csv"), std::string::npos) << e;
  touch(fs::path(root) / s.test[0]);

  // Only some CSVs present.
  fs::remove(fs::path(csvs) / "validation.csv");
  e = fg::test::error_of([&] { load_or_create_split(root, csvs, 0); });
  EXPECT_NE(e.find("validation.csv"), std::string::npos) << e;
  EXPECT_NE(e.find("delete"), std::string::npos) << e;

  // A CSV without its header, and one with two fields on a line.
  std::ofstream(fs::path(csvs) / "validation.csv") << "0.png\n";
  e = fg::test::error_of([&] { load_or_create_split(root, csvs, 0); });
  EXPECT_NE(e.find("header"), std::string::npos) << e;
  std::ofstream(fs::path(csvs) / "validation.csv") << "path\n0.png,1.png\n";
  e = fg::test::error_of([&] { load_or_create_split(root, csvs, 0); });
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  // The same image in two parts.
  std::ofstream(fs::path(csvs) / "validation.csv") << "path\r\n" << s.test[0] << "\r\n";
  e = fg::test::error_of([&] { load_or_create_split(root, csvs, 0); });
  EXPECT_NE(e.find("both"), std::string::npos) << e;

  // Too few images, and a missing image folder.
  TempDir few("splitfew");
  touch(few / "a.png");
  touch(few / "b.png");
  e = fg::test::error_of([&] { load_or_create_split(few.str(), (few / "run").string(), 0); });
  EXPECT_NE(e.find("at least 3"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(few / "run" / "train.csv"));
  e = fg::test::error_of([&] { load_or_create_split((few / "nope").string(), (few / "run").string(), 0); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

TEST(Task, NamesRoundTrip) {
  EXPECT_EQ(parse_task("dust"), Task::DUST);
  EXPECT_EQ(parse_task("negative"), Task::NEGATIVE);
  EXPECT_EQ(task_name(Task::NEGATIVE), "negative");
  EXPECT_NE(fg::test::error_of([] { parse_task("Dust"); }).find("dust and negative"), std::string::npos);
}

// ---- samples ----

class Samples : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("samples");
    // Different sizes and aspect ratios, one grey, one grey + alpha, one RGBA.
    write_png(*dir_ / "a.png", 3, 40, 52, 1);
    write_png(*dir_ / "b.png", 3, 33, 30, 2);
    write_png(*dir_ / "sub/c.png", 1, 36, 36, 3);
    write_png(*dir_ / "d.png", 4, 30, 44, 4);
    write_png(*dir_ / "e.png", 2, 50, 34, 5);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::vector<std::string> paths() { return list_images(dir_->str()); }
  static DatasetOptions options(Task task, bool train, bool fixed) {
    DatasetOptions o;
    o.task = task;
    o.size = 24;
    o.train = train;
    o.fixed_damage = fixed;
    o.seed = 11;
    return o;
  }
  static TempDir* dir_;
};
TempDir* Samples::dir_ = nullptr;

TEST_F(Samples, ShapesAndRangesPerTask) {
  for (Task task : {Task::DUST, Task::NEGATIVE}) {
    const RestorationDataset ds(dir_->str(), paths(), options(task, true, false));
    ASSERT_EQ(ds.size(), 5);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const Sample s = ds.get(i, 0);
      const std::string what = task_name(task) + " " + s.name;
      EXPECT_EQ(s.name, paths()[size_t(i)]);
      EXPECT_EQ(s.input.shape(), (Shape{3, 24, 24})) << what;
      EXPECT_EQ(s.target.shape(), (Shape{task == Task::DUST ? 3 : 1, 24, 24})) << what;
      EXPECT_EQ(s.mask.shape(), (Shape{1, 24, 24})) << what;
      EXPECT_EQ(s.clean.shape(), (Shape{3, 24, 24})) << what;
      for (const Tensor* t : {&s.input, &s.target, &s.mask, &s.clean}) {
        EXPECT_EQ(t->dtype(), DType::F32) << what;
        EXPECT_TRUE(t->is_contiguous()) << what;
        expect_in_unit_range(*t, what);
      }
      if (task == Task::NEGATIVE) {
        // Only the blue layer is damaged: R and G go in clean, the target is the clean blue.
        EXPECT_TRUE(same(s.input.slice(0, 0, 2).contiguous(), s.clean.slice(0, 0, 2).contiguous())) << what;
        EXPECT_TRUE(same(s.target, s.clean.slice(0, 2, 3).contiguous())) << what;
      } else {
        EXPECT_TRUE(same(s.target, s.clean)) << what;
      }
    }
  }
}

TEST_F(Samples, DamageIsVisibleWhereTheMaskIs) {
  const RestorationDataset ds(dir_->str(), paths(), options(Task::DUST, false, true));
  double changed = 0, mask_sum = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    const Sample s = ds.get(i, 0);
    const std::vector<double> in = s.input.to_vector(), cl = s.clean.to_vector(), m = s.mask.to_vector();
    for (size_t k = 0; k < in.size(); ++k) changed += std::abs(in[k] - cl[k]);
    for (double v : m) mask_sum += v;
  }
  EXPECT_GT(changed, 0.0) << "no sample was damaged";
  EXPECT_GT(mask_sum, 0.0) << "no sample has a mask";
}

TEST_F(Samples, FixedDamageIsStableAndTrainDamageIsFresh) {
  for (Task task : {Task::DUST, Task::NEGATIVE}) {
    const RestorationDataset fixed(dir_->str(), paths(), options(task, false, true));
    const RestorationDataset train(dir_->str(), paths(), options(task, true, false));
    int differing = 0;
    for (int64_t i = 0; i < fixed.size(); ++i) {
      EXPECT_TRUE(same_sample(fixed.get(i, 0), fixed.get(i, 7))) << task_name(task) << " " << i;
      differing += !same(train.get(i, 0).input, train.get(i, 1).input);
    }
    EXPECT_EQ(differing, fixed.size()) << task_name(task) << ": train samples repeat across epochs";
  }
}

TEST_F(Samples, DeterministicAcrossCallsCachesAndThreads) {
  DatasetOptions o = options(Task::DUST, true, false);
  const RestorationDataset cached(dir_->str(), paths(), o);
  o.cache_mb = 0;
  const RestorationDataset uncached(dir_->str(), paths(), o);
  std::vector<Sample> ref;
  for (int64_t i = 0; i < cached.size(); ++i) ref.push_back(uncached.get(i, 3));
  for (int64_t i = 0; i < cached.size(); ++i) {
    EXPECT_TRUE(same_sample(ref[size_t(i)], cached.get(i, 3))) << i;
    EXPECT_TRUE(same_sample(ref[size_t(i)], cached.get(i, 3))) << i << " (from the cache)";
  }
  // Threads asking in different orders, all at once, from a cold cache.
  o.cache_mb = 64;
  const RestorationDataset shared(dir_->str(), paths(), o);
  std::vector<std::vector<Sample>> got(3, std::vector<Sample>(size_t(cached.size())));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t k = 0; k < shared.size(); ++k) {
        const int64_t i = (k * (t + 1) + t) % shared.size();  // t = 0, 1, 2: three different orders (5 is prime)
        got[size_t(t)][size_t(i)] = shared.get(i, 3);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 3; ++t)
    for (int64_t i = 0; i < shared.size(); ++i)
      EXPECT_TRUE(same_sample(ref[size_t(i)], got[size_t(t)][size_t(i)])) << "thread " << t << " sample " << i;
}

TEST_F(Samples, GreyAndAlphaImagesBecomeRgb) {
  DatasetOptions o = options(Task::DUST, false, true);
  o.size = 0;  // whole images: the pixels can be compared with the files
  const std::vector<std::string> p = paths();
  const RestorationDataset ds(dir_->str(), p, o);
  for (int64_t i = 0; i < ds.size(); ++i) {
    const Sample s = ds.get(i, 0);
    const Image img = read_image((fs::path(dir_->str()) / p[size_t(i)]).string());
    EXPECT_EQ(s.clean.shape(), (Shape{3, img.height(), img.width()})) << s.name;
    EXPECT_EQ(s.input.shape(), s.clean.shape()) << s.name;
    EXPECT_TRUE(same(s.clean, to_rgb(img, AlphaMode::Composite, 1.0f))) << s.name;
    if (img.channels <= 2) {
      EXPECT_TRUE(same(s.clean.select(0, 0), s.clean.select(0, 2))) << s.name << ": grey should be repeated";
    }
  }
  // Composite over white: a fully transparent pixel is white.
  TempDir clear("clear");
  Tensor rgba = Tensor::zeros({4, 12, 12});
  write_image((clear / "x.png").string(), make_image(rgba));
  write_image((clear / "y.png").string(), make_image(rgba));
  const RestorationDataset t(clear.str(), {"x.png", "y.png"}, o);
  const std::vector<double> v = t.get(0, 0).clean.to_vector();
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return x == 1.0; }));
}

TEST_F(Samples, SamplesPerImageAndIndices) {
  DatasetOptions o = options(Task::DUST, true, false);
  o.samples_per_image = 3;
  const RestorationDataset ds(dir_->str(), paths(), o);
  EXPECT_EQ(ds.size(), 15);
  EXPECT_EQ(ds.image_of(7), 2);
  EXPECT_EQ(ds.get(7, 0).name, paths()[2] + "#1");
  EXPECT_FALSE(same(ds.get(6, 0).input, ds.get(7, 0).input)) << "crops of one image should differ";
  EXPECT_NE(fg::test::error_of([&] { ds.get(15, 0); }).find("outside"), std::string::npos);
  EXPECT_NE(fg::test::error_of([&] { ds.get(-1, 0); }).find("outside"), std::string::npos);
}

TEST_F(Samples, LoadSizeCropsPiecesOfALargerRenderingAndFixedCropsDiffer) {
  // Without training, crop 0 is the centre and crops k > 0 are fixed random boxes: all differ, none changes.
  DatasetOptions o = options(Task::DUST, false, true);
  o.size = 16;
  o.load_size = 40;
  o.samples_per_image = 3;
  const RestorationDataset ds(dir_->str(), paths(), o);
  EXPECT_EQ(ds.get(0, 0).clean.shape(), (Shape{3, 16, 16}));
  EXPECT_FALSE(same(ds.get(0, 0).clean, ds.get(1, 0).clean));
  EXPECT_FALSE(same(ds.get(1, 0).clean, ds.get(2, 0).clean));
  EXPECT_TRUE(same(ds.get(2, 0).clean, ds.get(2, 5).clean));
  // The centre crop of a 40-px rendering is not the centre crop of a 16-px one (a larger scale of detail).
  DatasetOptions small = o;
  small.load_size = 0;
  const RestorationDataset ds_small(dir_->str(), paths(), small);
  EXPECT_FALSE(same(ds.get(0, 0).clean, ds_small.get(0, 0).clean));
  DatasetOptions bad = o;
  bad.load_size = 8;
  EXPECT_NE(fg::test::error_of([&] { RestorationDataset b(dir_->str(), paths(), bad); }).find("load size"),
            std::string::npos);
}

TEST_F(Samples, DustIsSizedForTheRenderingTheCropComesFrom) {
  // By default a crop's dust is the rendering's (load size 40): the same as naming that frame, and not the dust
  // sized for the 16 px crop itself.
  DatasetOptions o = options(Task::DUST, false, true);
  o.size = 16;
  o.load_size = 40;
  const RestorationDataset by_default(dir_->str(), paths(), o);
  DatasetOptions named = o;
  named.damage_frame_min = named.damage_frame_max = 40;
  const RestorationDataset framed(dir_->str(), paths(), named);
  DatasetOptions crop_sized = o;
  crop_sized.damage_frame_min = crop_sized.damage_frame_max = 16;
  const RestorationDataset cropped(dir_->str(), paths(), crop_sized);
  bool any_differs = false;
  for (int64_t i = 0; i < by_default.size(); ++i) {
    EXPECT_TRUE(same(by_default.get(i, 0).input, framed.get(i, 0).input)) << i;
    any_differs = any_differs || !same(by_default.get(i, 0).mask, cropped.get(i, 0).mask);
  }
  EXPECT_TRUE(any_differs);
  // A range draws a frame per sample, deterministically.
  DatasetOptions ranged = o;
  ranged.damage_frame_min = 16;
  ranged.damage_frame_max = 256;
  const RestorationDataset r(dir_->str(), paths(), ranged);
  EXPECT_TRUE(same(r.get(0, 0).input, r.get(0, 0).input));
  DatasetOptions bad = o;
  bad.damage_frame_min = 0;
  bad.damage_frame_max = 64;
  EXPECT_NE(fg::test::error_of([&] { RestorationDataset b(dir_->str(), paths(), bad); }).find("damage frame"),
            std::string::npos);
}

TEST_F(Samples, CacheStaysWithinItsBudget) {
  DatasetOptions o = options(Task::DUST, false, true);
  o.size = 128;  // each cached image is 3 x 128 x (128..) f32, about 0.2-0.3 MiB: a few fit in 1 MiB
  o.cache_mb = 1;
  const RestorationDataset ds(dir_->str(), paths(), o);
  for (int64_t i = 0; i < ds.size(); ++i) {
    ds.get(i, 0);
    EXPECT_LE(ds.cache_bytes(), int64_t(1) << 20);
  }
  EXPECT_GT(ds.cache_bytes(), 0);
  o.cache_mb = 0;
  const RestorationDataset none(dir_->str(), paths(), o);
  none.get(0, 0);
  EXPECT_EQ(none.cache_bytes(), 0);
}

TEST_F(Samples, UnreadableImagesAndBadOptionsAreNamedErrors) {
  TempDir dir("broken");
  write_png(dir / "good.png", 3, 30, 30, 9);
  std::ofstream(dir / "broken.png") << "this is not a PNG";
  const RestorationDataset ds(dir.str(), {"good.png", "broken.png", "gone.png"}, options(Task::DUST, false, true));
  EXPECT_EQ(fg::test::error_of([&] { ds.get(0, 0); }), "");
  std::string e = fg::test::error_of([&] { ds.get(1, 0); });
  EXPECT_NE(e.find("broken.png"), std::string::npos) << e;
  e = fg::test::error_of([&] { ds.get(2, 0); });
  EXPECT_NE(e.find("gone.png"), std::string::npos) << e;

  EXPECT_NE(fg::test::error_of([&] { RestorationDataset(dir.str(), {}, DatasetOptions{}); }), "");
  DatasetOptions bad;
  bad.samples_per_image = 0;
  EXPECT_NE(fg::test::error_of([&] { RestorationDataset(dir.str(), {"good.png"}, bad); }), "");
  bad = DatasetOptions{};
  bad.size = -1;
  EXPECT_NE(fg::test::error_of([&] { RestorationDataset(dir.str(), {"good.png"}, bad); }), "");
}

}  // namespace
}  // namespace fg::data

// `filmgrad inspect --model NAME`: the layer table, in the layout of fastai's learn.summary() that the
// dissertation's appendix A comes from (Layer (type), Output Shape, Param #, Trainable), then the parameters by
// part and by layer type, and the totals. The table comes from one eval-mode forward, without gradients, on a
// zero input of the model's default size (or --size), observed through nn::ActivationRecorder.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/model_options.h"
#include "nn/recorder.h"

namespace fg::apps {

namespace {

std::string help_text() {
  return "usage: filmgrad inspect --model NAME [--width W] [--size H W] [--weights FILE] [--seed S]\n"
         "                        [--all] [--no-freeze]\n"
         "\n"
         "Prints every layer of the model in the order the forward runs it, with its output shape, its own\n"
         "parameter count and whether those parameters are trainable, then the parameters by part and by\n"
         "layer type, and the totals (total, trainable, non-trainable). One forward in eval mode, without\n"
         "gradients, on a zero input of the model's default size.\n"
         "\n"
         "options:\n" +
         model_options_help() +
         "  --size H W       input height and width (default: the model's; the channel count is the model's)\n"
         "  --all            also list the composite modules (blocks, Sequential containers), not only the\n"
         "                   layers and the modules with parameters of their own\n"
         "  --no-freeze      show every parameter trainable; by default a model is shown as its training\n"
         "                   starts (dynamic_unet: the encoder frozen except its BatchNorms, as fastai does)\n";
}

std::string shape_list(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct Row {
  std::string layer, shape, params, trainable;
};

void print_table(const std::vector<Row>& rows) {
  size_t w0 = std::string("Layer (type)").size(), w1 = std::string("Output Shape").size(), w2 = 7;
  for (const Row& r : rows) {
    w0 = std::max(w0, r.layer.size());
    w1 = std::max(w1, r.shape.size());
    w2 = std::max(w2, r.params.size());
  }
  w0 += 3;
  w1 += 3;
  w2 += 3;
  const size_t total = w0 + w1 + w2 + 9;
  const std::string equals(total, '='), under(total, '_');
  auto line = [&](const Row& r) {
    std::printf("%-*s%-*s%-*s%s\n", int(w0), r.layer.c_str(), int(w1), r.shape.c_str(), int(w2), r.params.c_str(),
                r.trainable.c_str());
  };
  std::printf("%s\n", equals.c_str());
  line({"Layer (type)", "Output Shape", "Param #", "Trainable"});
  std::printf("%s\n", equals.c_str());
  for (size_t i = 0; i < rows.size(); ++i) {
    line(rows[i]);
    std::printf("%s\n", (i + 1 == rows.size() ? equals : under).c_str());
  }
}

std::string trainable_word(int64_t params, int64_t trainable) {
  if (params == 0) return "-";
  if (trainable == params) return "True";
  if (trainable == 0) return "False";
  return "partly (" + with_thousands(trainable) + ")";
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  std::vector<OptionSpec> specs = model_option_specs();
  specs.push_back({"--size", 2});
  specs.push_back({"--all", 0});
  specs.push_back({"--no-freeze", 0});
  ArgParser args("inspect", specs);
  args.parse(argc, argv, 2);
  const ModelOptions mo = read_model_options(args);
  Shape input_shape = mo.spec->default_input;
  if (args.has("--size")) {
    input_shape[2] = args.integer_value("--size", args.values("--size")[0], 1);
    input_shape[3] = args.integer_value("--size", args.values("--size")[1], 1);
  }
  const bool show_all = args.has("--all");

  std::shared_ptr<nn::Module> model = build_model(mo);
  const std::string frozen = args.has("--no-freeze") ? "" : models::freeze_as_trained(*model);
  model->eval();

  std::vector<nn::LayerRecord> records;
  {
    NoGradGuard no_grad;
    nn::ActivationRecorder recorder(*model);
    const Variable x(Tensor::zeros(input_shape));
    try {
      models::run_model(*model, x);
    } catch (const fg::Error& e) {
      throw fg::Error(mo.spec->name + " cannot run on an input of shape " + shape_str(input_shape) + ": " + e.what() +
                      " (choose another --size)");
    }
    records = recorder.records();
  }

  std::map<std::string, const nn::Module*> modules;
  for (const auto& [name, m] : static_cast<const nn::Module&>(*model).named_modules()) modules[name] = m;

  std::printf("%s: %s\n", mo.spec->name.c_str(), mo.spec->description.c_str());
  std::printf("width %s, input %s, weights: %s\n", format_number(mo.width).c_str(), shape_str(input_shape).c_str(),
              describe_weights(mo).c_str());
  if (!frozen.empty()) std::printf("%s\n", frozen.c_str());

  // Rows in the order the forward ran the modules. Modules with parameters that never ran through operator() (a
  // parent may use their weights directly, as SelfAttention uses its query, key and value) follow the closest
  // recorded ancestor, with "-" as the output shape, so that every parameter appears in the table.
  std::set<std::string> recorded;
  for (const nn::LayerRecord& r : records) recorded.insert(r.name);
  auto own_counts = [](const nn::Module& m) {
    std::pair<int64_t, int64_t> n{0, 0};
    for (const auto& [pname, p] : m.named_parameters())
      if (pname.find('.') == std::string::npos) {
        n.first += p.numel();
        if (p.requires_grad()) n.second += p.numel();
      }
    return n;
  };
  std::vector<Row> rows;
  std::set<std::string> listed_unrecorded;
  auto add_unrecorded_below = [&](const std::string& prefix) {
    for (const auto& [name, m] : static_cast<const nn::Module&>(*model).named_modules()) {
      if (name.empty() || recorded.count(name) || listed_unrecorded.count(name)) continue;
      if (!prefix.empty() && name.rfind(prefix + ".", 0) != 0) continue;
      const auto [own, trainable] = own_counts(*m);
      if (own == 0) continue;
      listed_unrecorded.insert(name);
      rows.push_back({name + " (" + m->type_name() + ")", "-", with_thousands(own), trainable_word(own, trainable)});
    }
  };
  for (const nn::LayerRecord& r : records) {
    if (r.name.empty()) continue;  // the model itself
    const nn::Module* m = modules.at(r.name);
    const bool composite = !m->named_children().empty();
    if (!composite || r.own_parameters > 0 || show_all)
      rows.push_back({r.name + " (" + r.type_name + ")", shape_list(r.output_shape), with_thousands(r.own_parameters),
                      trainable_word(r.own_parameters, r.own_trainable)});
    if (composite) add_unrecorded_below(r.name);
  }
  const bool any_unrecorded_before = !listed_unrecorded.empty();
  const size_t rows_before = rows.size();
  add_unrecorded_below("");
  print_table(rows);
  if (any_unrecorded_before || rows.size() > rows_before)
    std::printf(
        "Output Shape '-': the module did not run by itself (its parent uses its parameters directly,\n"
        "or this input does not reach it); its parameters count in the totals.\n");

  // By part (the model's top-level children, plus its own parameters) and by layer type.
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> parts;
  std::map<std::string, std::pair<int64_t, int64_t>> by_type;
  for (const auto& [name, p] : model->named_parameters()) {
    const size_t dot = name.find('.');
    const std::string part = dot == std::string::npos ? "(own)" : name.substr(0, dot);
    if (parts.empty() || parts.back().first != part) parts.push_back({part, {0, 0}});
    parts.back().second.first += p.numel();
    if (p.requires_grad()) parts.back().second.second += p.numel();
    const size_t last = name.find_last_of('.');
    const std::string owner = last == std::string::npos ? "" : name.substr(0, last);
    auto& t = by_type[modules.at(owner)->type_name()];
    t.first += p.numel();
    if (p.requires_grad()) t.second += p.numel();
  }
  auto print_group = [](const char* title, const std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>>& g) {
    size_t w = 0;
    for (const auto& e : g) w = std::max(w, e.first.size());
    std::printf("%s\n", title);
    for (const auto& [name, n] : g)
      std::printf("  %-*s %14s   trainable %s\n", int(w), name.c_str(), with_thousands(n.first).c_str(),
                  with_thousands(n.second).c_str());
  };
  print_group("Parameters by part:", parts);
  print_group("Parameters by layer type:", {by_type.begin(), by_type.end()});

  const int64_t total = model->num_parameters(), trainable = model->num_parameters(true);
  std::printf("Total params: %s\n", with_thousands(total).c_str());
  std::printf("Trainable params: %s\n", with_thousands(trainable).c_str());
  std::printf("Non-trainable params: %s\n", with_thousands(total - trainable).c_str());
  return 0;
}

}  // namespace fg::apps

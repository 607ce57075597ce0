// The task names of data/dataset.h, apart from the datasets: restoring needs them, and an inference-only build
// (FG_MINIMAL) leaves the datasets out.
#include "data/dataset.h"
#include "tensor/error.h"

namespace fg::data {

Task parse_task(const std::string& name) {
  if (name == "dust") return Task::DUST;
  if (name == "negative") return Task::NEGATIVE;
  throw fg::Error("unknown task '" + name + "'; the tasks are dust and negative");
}

std::string task_name(Task task) {
  return task == Task::DUST ? "dust" : "negative";
}

}  // namespace fg::data

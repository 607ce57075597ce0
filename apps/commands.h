// The subcommands of the `filmgrad` program, one file each (apps/cmd_<name>.cpp). Each takes the whole command
// line (argv[1] is its own name, its options start at argv[2]) and returns the process exit status; usage
// mistakes and missing input files throw UsageError (apps/args.h), other failures fg::Error, and main reports
// both as one line.
#pragma once

namespace fg::apps {

// The version every subcommand reports and writes into its output files' metadata.
inline constexpr const char* kFilmgradVersion = "0.1.0";

int cmd_demo(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_forward(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_restore(int argc, char** argv);
int cmd_metrics(int argc, char** argv);
int cmd_version(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_study(int argc, char** argv);

}  // namespace fg::apps

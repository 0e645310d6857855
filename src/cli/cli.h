/* The `edgecri pull` / `edgecri import` subcommands. */
#pragma once

#include <stdbool.h>

bool cli_is_command(const char *arg);
int cli_main(int argc, char **argv);

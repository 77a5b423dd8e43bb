//! Command-line subcommands. (Being written.)

//! The commands around `build` that turn a folder into a published site:
//! `init` writes a starter project, `serve` builds, serves and rebuilds it.

pub mod init;
pub mod serve;

//! Links the release `hush` so that a running node maps little of it.
//!
//! An idle node's own memory is ~5 MiB; the rest of what it holds is the
//! executable's pages, which the kernel maps in 64 KiB around each page a
//! process first touches. Two link options cut that by half
//! (docs/benchmarks.md, "Hot code first"):
//!
//! - **Hot code first.** `hush.order` lists the functions a running node
//!   executes (written by `dist/symbol-order.sh`); lld's
//!   `--symbol-ordering-file` puts them at the start of the text, so the
//!   ~2 MB a node runs sit together instead of spread over 30 MB.
//! - **Packed relocations** (`-z pack-relative-relocs`, DT_RELR): the
//!   position-independent executable's 60,000 relative relocations, which
//!   the loader reads at every start, take 18 KB instead of 1.4 MB.
//!
//! Both are used only where they work: a release build for x86_64 Linux,
//! with the rustc that wrote `hush.order` (whose default linker is lld, and
//! whose symbol hashes the file lists), no linker chosen by the user, and
//! for RELR a glibc of 2.36 or later (older ones cannot load it). Anywhere
//! else the binary links as usual: larger in memory, otherwise the same.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORDER: &str = "hush.order";

fn main() {
    println!("cargo:rerun-if-changed={ORDER}");
    let Some(order) = order_file() else {
        return;
    };
    let arg = |a: &str| println!("cargo:rustc-link-arg-bin=hush={a}");
    arg(&format!("-Wl,--symbol-ordering-file={}", order.display()));
    // Functions listed but not in this build (renamed or removed since the
    // file was written) are skipped; lld would warn about each.
    arg("-Wl,--no-warn-symbol-ordering");
    if glibc_loads_relr() {
        arg("-Wl,-z,pack-relative-relocs");
    }
}

fn var(name: &str) -> String {
    env::var(name).unwrap_or_default()
}

/// The order file, if this build links with lld and the file's names.
fn order_file() -> Option<PathBuf> {
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("HOST") != var("TARGET")
    {
        return None;
    }
    // A linker of the user's choosing (cargo's `linker` setting, or link
    // flags of their own) may not be lld.
    if !var("RUSTC_LINKER").is_empty() || var("CARGO_ENCODED_RUSTFLAGS").contains("link") {
        return None;
    }
    let path = Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER);
    let text = std::fs::read_to_string(&path).ok()?;
    let written_by = text.lines().find_map(|l| l.strip_prefix("# rustc "))?;
    let building_with = command_output(&var("RUSTC"), &["-V"])?;
    let building_with = building_with.strip_prefix("rustc ")?;
    if building_with != written_by {
        println!(
            "cargo:warning=cli/{ORDER} was written for rustc {written_by}, this is rustc \
             {building_with}: hush links without it (an idle node then holds about twice \
             the memory); run dist/symbol-order.sh to write it \
             for this toolchain"
        );
        return None;
    }
    Some(path)
}

/// Whether this machine's glibc (the one the binary will link and, built
/// here, run against) loads DT_RELR: 2.36 and later.
fn glibc_loads_relr() -> bool {
    let Some(version) = command_output("getconf", &["GNU_LIBC_VERSION"]) else {
        return false;
    };
    let mut numbers = version
        .trim_start_matches("glibc ")
        .split('.')
        .map(|n| n.parse::<u32>().ok());
    matches!(
        (numbers.next().flatten(), numbers.next().flatten()),
        (Some(major), Some(minor)) if (major, minor) >= (2, 36)
    )
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

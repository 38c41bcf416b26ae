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
    warn_if_inputs_changed(&text);
    Some(path)
}

/// Symbol names carry hashes of each crate's dependencies and features, so
/// a changed Cargo.lock or manifest renames functions the file lists (one
/// dependency added to hush-protocol once renamed half of them, and an
/// idle node went from 14 to 21 MiB). The file names the files it was
/// written from and their POSIX `cksum` (`# inputs CRC SIZE: FILE...`);
/// when they differ now, the build says so. The file is still used: most
/// of its names usually still match.
fn warn_if_inputs_changed(order: &str) {
    let Some(line) = order.lines().find_map(|l| l.strip_prefix("# inputs ")) else {
        return;
    };
    let Some((sum, files)) = line.split_once(": ") else {
        return;
    };
    let root = Path::new(&var("CARGO_MANIFEST_DIR")).join("..");
    let mut bytes = Vec::new();
    for file in files.split_whitespace() {
        let path = root.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        match std::fs::read(&path) {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(_) => return,
        }
    }
    let now = format!("{} {}", cksum(&bytes), bytes.len());
    if now != sum {
        println!(
            "cargo:warning=cli/{ORDER} was written before the lock file or a manifest \
             changed: functions it lists may have been renamed, and an idle node then holds \
             more memory; run dist/symbol-order.sh to write it again"
        );
    }
}

/// POSIX `cksum`: CRC-32 (polynomial 0x04C11DB7, most significant bit
/// first) over the bytes and then their length, complemented.
fn cksum(data: &[u8]) -> u32 {
    fn step(crc: u32, byte: u8) -> u32 {
        let mut crc = crc ^ (u32::from(byte) << 24);
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
        crc
    }
    let mut crc = data.iter().fold(0, |crc, &b| step(crc, b));
    let mut len = data.len();
    while len != 0 {
        crc = step(crc, len as u8);
        len >>= 8;
    }
    !crc
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

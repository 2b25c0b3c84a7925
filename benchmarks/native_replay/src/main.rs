//! Baseline for `python -m benchmarks automerge_trace`: replays a sequential editing trace
//! through the `automerge` crate with no Python in between, measured the same way as the
//! binding workload in `benchmarks/automerge_trace.py`.
//!
//! Usage: `native_replay TRACE.json.gz one_commit|commit_per_patch [LIMIT]`
//! Prints one JSON object: patches, edit_s, save_s, load_s, save_bytes, edit_memory_mb.

use std::{error::Error, fs::File, io::Read, time::Instant};

use automerge::{transaction::Transactable, AutoCommit, LoadOptions, ObjType, ReadDoc, TextEncoding, ROOT};
use flate2::read::GzDecoder;
use serde::Deserialize;

const ENCODING: TextEncoding = TextEncoding::UnicodeCodePoint;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(usize, isize, String)>,
}

/// The text the first patches produce, by plain string editing (code point positions).
fn replay_chars(start: &str, patches: &[(usize, isize, String)]) -> String {
    let mut text: Vec<char> = start.chars().collect();
    for (pos, del, ins) in patches {
        text.splice(*pos..*pos + *del as usize, ins.chars());
    }
    text.into_iter().collect()
}

/// A memory field of /proc/self/status (Linux), in MB.
fn proc_status_mb(field: &str) -> Result<f64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    Ok(kb / 1024.0)
}

extern "C" {
    /// glibc: hand freed heap memory back to the kernel.
    fn malloc_trim(pad: usize) -> i32;
}

/// Start measuring the RSS growth of one phase, as `PhaseMemory` in benchmarks/measure.py does:
/// trim the heap (freed setup memory would otherwise be reused unseen), reset the kernel's
/// peak-RSS mark, and return the RSS now.
fn start_phase_memory() -> Result<f64, Box<dyn Error>> {
    // SAFETY: malloc_trim only releases free pages; it touches no live allocation.
    unsafe { malloc_trim(0) };
    std::fs::write("/proc/self/clear_refs", "5")?;
    proc_status_mb("VmRSS")
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (path, mode) = match args.as_slice() {
        [_, path, mode, ..] => (path, mode.as_str()),
        _ => return Err("usage: native_replay TRACE.json.gz one_commit|commit_per_patch [LIMIT]".into()),
    };
    let commit_per_patch = match mode {
        "one_commit" => false,
        "commit_per_patch" => true,
        other => return Err(format!("unknown mode {other:?}").into()),
    };
    let limit = args.get(3).map(|n| n.parse::<usize>()).transpose()?.unwrap_or(usize::MAX);

    let mut json = String::new();
    GzDecoder::new(File::open(path)?).read_to_string(&mut json)?;
    let trace: Trace = serde_json::from_str(&json)?;
    drop(json);
    let all: Vec<_> = trace.txns.into_iter().flat_map(|t| t.patches).collect();
    let total = all.len();
    let patches: Vec<_> = all.into_iter().take(limit).collect();
    let expected = if patches.len() == total {
        trace.end_content
    } else {
        replay_chars(&trace.start_content, &patches)
    };

    let mut doc = AutoCommit::new_with_encoding(ENCODING);
    let text = doc.put_object(ROOT, "text", ObjType::Text)?;
    doc.splice_text(&text, 0, 0, &trace.start_content)?;
    doc.commit();

    let baseline_mb = start_phase_memory()?;
    let started = Instant::now();
    for (pos, del, ins) in &patches {
        doc.splice_text(&text, *pos, *del, ins)?;
        if commit_per_patch {
            doc.commit();
        }
    }
    doc.commit();
    let edit_s = started.elapsed().as_secs_f64();
    let edit_memory_mb = proc_status_mb("VmHWM")? - baseline_mb;
    if doc.text(&text)? != expected {
        return Err("replayed text differs from the expected text".into());
    }

    let started = Instant::now();
    let saved = doc.save();
    let save_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let loaded = AutoCommit::load_with_options(&saved, LoadOptions::new().text_encoding(ENCODING))?;
    let load_s = started.elapsed().as_secs_f64();
    if loaded.text(&text)? != expected {
        return Err("loaded text differs from the expected text".into());
    }

    let result = serde_json::json!({
        "patches": patches.len(),
        "edit_s": edit_s,
        "save_s": save_s,
        "load_s": load_s,
        "save_bytes": saved.len(),
        "edit_memory_mb": edit_memory_mb,
    });
    println!("{result}");
    Ok(())
}

//! The least work a replay can do: read a scenario file line by line and parse each line
//! into a `serde_json::Value` (docs/performance.md, "Replay vs parsing"). The replay's cost
//! is reported as a ratio to this program's on the same file.
//!
//!     cargo run --release --example parse_baseline -- FILE.jsonl

#![warn(clippy::too_many_lines)]

use std::io::{BufRead, BufReader};

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: parse_baseline FILE.jsonl");
    let mut input = BufReader::new(std::fs::File::open(path)?);
    let mut line = String::new();
    let (mut lines, mut objects) = (0u64, 0u64);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lines += 1;
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            objects += u64::from(v.is_object());
        }
    }
    println!("{lines} lines, {objects} JSON objects");
    Ok(())
}

//! Issue 16: a fuzz test that runs with every `cargo test`. A deterministic, seeded mutator of
//! the bytes of the example stacks — byte flips, truncation, lines (keys) deleted and
//! duplicated, values swapped for another type or an extreme one, very long lines, deep
//! nesting, invalid UTF-8 — and the property: `parse_bytes` returns a spec or a report, never
//! a panic or an abort, in time linear in the input; every report renders, through the
//! binary's own renderer too; a spec that validates expands to a graph.
//!
//! A failure names its case and seed and leaves the input in the temporary directory, so
//! that it reproduces with `PREFECT_ECS_FUZZ_SEED`. `PREFECT_ECS_FUZZ_CASES` sets how many
//! cases run (`scripts/fuzz` runs many more than the default).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use super::tests::{env, render_hook};
use super::*;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values of every type and the awkward ones: what a typo, a paste or an attacker writes.
const VALUES: &[&str] = &[
    "1",
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "4294967296",
    "1.5",
    "1e308",
    "nan",
    "-inf",
    "0x7fffffff",
    "true",
    "\"\"",
    "\" \"",
    "\"true\"",
    "\"1024\"",
    "\"${UNSET}\"",
    "\"${PREFECT_ACCOUNT_ID}\"",
    "\"${UNSET:-}\"",
    "\"$\"",
    "\"${\"",
    "\"pnu_abcdefghijklmnopqrstuvwxyz0123456789\"",
    "\"http://u:p@h/api\"",
    "\"eu-west-1\"",
    "\"us-east-1a\"",
    "\"10.0.0.0/8\"",
    "\"0.0.0.0/0\"",
    "\"aws/x\"",
    "\"a/b%c\"",
    "\"Upper/Case:tag\"",
    "\"\\u0000\"",
    "\"\u{202e}\u{fe0f}\u{1F600}\"",
    "1979-05-27T07:32:00Z",
    "[]",
    "[1, \"a\", true]",
    "[[1]]",
    "[\"us-east-1a\", \"us-east-1b\", \"us-east-1c\", \"us-east-1d\", \"us-east-1e\", \"us-east-1f\", \"us-east-1g\", \"us-east-1h\", \"us-east-1i\"]",
    "{}",
    "{ a = 1 }",
    "{ \"\" = \"\" }",
];

/// Lines that reshape the file's tables.
const LINES: &[&str] = &[
    "[stack]",
    "[[stack]]",
    "[worker]",
    "[[worker]]",
    "[[work_pool]]",
    "[network]",
    "[stack.tags]",
    "[worker.env]",
    "name = \"w\"",
    "work_pool = \"pool\"",
    "availability_zones = []",
    "az_count = 17",
    "cpu = 256",
    "memory = 512",
    "a.b.c = 1",
    "x = ",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "#",
];

#[derive(Debug, Clone, Copy)]
enum Mutation {
    FlipByte,
    Truncate,
    DeleteLine,
    DuplicateLine,
    SwapValue,
    InsertLine,
    LongLine,
    DeepNesting,
    InvalidUtf8,
    Splice,
}

const MUTATIONS: [Mutation; 10] = [
    Mutation::FlipByte,
    Mutation::Truncate,
    Mutation::DeleteLine,
    Mutation::DuplicateLine,
    Mutation::SwapValue,
    Mutation::InsertLine,
    Mutation::LongLine,
    Mutation::DeepNesting,
    Mutation::InvalidUtf8,
    Mutation::Splice,
];

/// The byte ranges of the lines of `bytes`, each with its newline.
fn lines(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push(start..bytes.len());
    }
    out
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, stacks: &[Vec<u8>], mutation: Mutation) {
    let at = rng.below(bytes.len() + 1);
    let all = lines(bytes);
    let line = (!all.is_empty()).then(|| all[rng.below(all.len())].clone());
    match mutation {
        Mutation::FlipByte if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        Mutation::Truncate => bytes.truncate(at),
        Mutation::DeleteLine => {
            if let Some(line) = line {
                bytes.drain(line);
            }
        }
        Mutation::DuplicateLine => {
            if let Some(line) = line {
                let copy = bytes[line].to_vec();
                let to = all[rng.below(all.len())].start;
                bytes.splice(to..to, copy);
            }
        }
        Mutation::SwapValue => {
            let Some(line) = line else { return };
            let text = bytes[line.clone()].to_vec();
            if let Some(eq) = text.iter().position(|&b| b == b'=') {
                let value = rng.pick(VALUES).as_bytes().to_vec();
                let end = line.end - usize::from(text.ends_with(b"\n"));
                bytes.splice(line.start + eq + 1..end, [b" ".as_slice(), &value].concat());
            }
        }
        Mutation::InsertLine => {
            let to = line.map_or(0, |l| l.start);
            let text = format!("{}\n", rng.pick(LINES));
            bytes.splice(to..to, text.into_bytes());
        }
        Mutation::LongLine => {
            let to = line.map_or(0, |l| l.start);
            let long = "x".repeat(60_000 + rng.below(20_000));
            let text = match rng.below(3) {
                0 => format!("# {long}\n"),
                1 => format!("[stack.tags]\nlong = \"{long}\", bad = 1\n"),
                _ => format!("name = \"{long}\"\n"),
            };
            bytes.splice(to..to, text.into_bytes());
        }
        Mutation::DeepNesting => {
            let to = line.map_or(0, |l| l.start);
            let depth = *rng.pick(&[MAX_DEPTH, MAX_DEPTH + 1, 100, 2_000, 20_000]);
            let text = match rng.below(4) {
                0 => format!("x = {}\n", "[".repeat(depth)),
                1 => format!("x = {}1{}\n", "{ a = ".repeat(depth), " }".repeat(depth)),
                2 => format!("[{}]\n", vec!["a"; depth].join(".")),
                _ => "tags = { [stack]\n".repeat(depth),
            };
            bytes.splice(to..to, text.into_bytes());
        }
        Mutation::InvalidUtf8 => {
            let invalid: Vec<u8> = (0..1 + rng.below(4))
                .map(|_| 0x80 | rng.below(0x80) as u8)
                .collect();
            bytes.splice(at..at, invalid);
        }
        Mutation::Splice => {
            let other = rng.pick(stacks);
            let other_lines = lines(other);
            if !other_lines.is_empty() {
                let from = other_lines[rng.below(other_lines.len())].clone();
                bytes.splice(at..at, other[from].to_vec());
            }
        }
        Mutation::FlipByte => {}
    }
}

fn example_stacks() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks");
    let mut stacks: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    stacks.sort();
    stacks.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Validates `input` and renders what comes back; the spec (if any) is expanded to a graph.
fn check(input: &[u8]) {
    let env = env();
    match parse_bytes(
        input,
        Path::new("fuzz.toml"),
        &|n| env.get(n).cloned(),
        Some("us-east-1"),
    ) {
        Ok(spec) => {
            let _ = crate::graph::build(&spec, "us-east-1", None, None);
        }
        Err(err) => {
            assert!(!render_plain(&err).is_empty());
            assert!(!render_hook(&err).is_empty());
        }
    }
}

#[test]
fn mutated_stacks_get_a_spec_or_a_report() {
    let stacks = example_stacks();
    assert!(stacks.len() >= 3, "the example stacks are the corpus");
    let seed = number("PREFECT_ECS_FUZZ_SEED", 16);
    let cases = number("PREFECT_ECS_FUZZ_CASES", 600);
    let mut slowest = (Duration::ZERO, 0);
    let started = Instant::now();
    for case in 0..cases {
        let mut rng = Rng(seed ^ (case + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut input = rng.pick(&stacks).clone();
        let applied: Vec<Mutation> = (0..1 + rng.below(3))
            .map(|_| {
                let mutation = *rng.pick(&MUTATIONS);
                mutate(&mut rng, &mut input, &stacks, mutation);
                mutation
            })
            .collect();
        let one = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let took = one.elapsed();
        if outcome.is_err() {
            let saved = std::env::temp_dir().join(format!("prefect-ecs-fuzz-{seed:x}-{case}.toml"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "case {case} (PREFECT_ECS_FUZZ_SEED={seed}) panicked after {applied:?}; the input \
                 is {}",
                saved.display()
            );
        }
        slowest = slowest.max((took, case));
    }
    println!(
        "{cases} mutated stacks in {:?}; slowest case {} took {:?}",
        started.elapsed(),
        slowest.1,
        slowest.0
    );
    // Linear work takes milliseconds here even in a debug build on a busy machine; the
    // quadratic reports of issue 16 took tens of seconds.
    assert!(
        slowest.0 < Duration::from_secs(5),
        "case {} took {:?}",
        slowest.1,
        slowest.0
    );
}

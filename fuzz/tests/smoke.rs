//! Every fuzz target on its committed seed corpus and on deterministic mutations of it, on
//! stable Rust, as part of the normal test suite: a short, always-on run of what
//! `bench/fuzz.sh` runs for longer with libFuzzer. A failure prints the target and the input
//! (and writes it to `target/fuzz-smoke-failures/`, to keep as a regression seed).

use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");

/// Mutations per target: the ones that make a directory or a store per input run fewer.
fn rounds(target: &str) -> usize {
    match target {
        "archive_load" => 150,
        "layer_apply" => 600,
        "auth_file" | "registries_config" => 1500,
        _ => 4000,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = b"\0\xff\x7f\x80/.\"{}[]\\\n:@${%#*?!0";

/// One to four of: a bit flip, an interesting byte, an insertion, a deletion, a duplicated
/// range, a truncation, a splice with another seed.
fn mutate(seed: &[u8], others: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let b = rng.next() as u8;
                d.insert(i, b);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                d.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = d[a..b].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            5 if len > 0 => d.truncate(rng.below(len)),
            6 if !others.is_empty() => {
                let o = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(o.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&o[from..]);
            }
            _ => {}
        }
    }
    d
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(CORPUS).join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no seeds for {target}");
    v.into_iter().map(|(_, d)| d).collect()
}

fn run_one(target: &str, f: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(|| f(input)).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-smoke-failures");
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join(format!("{target}-{:016x}", hash(input)));
        let _ = std::fs::write(&p, input);
        panic!(
            "fuzz target {target} failed on {} bytes (kept in {}): {:?}",
            input.len(),
            p.display(),
            String::from_utf8_lossy(&input[..input.len().min(512)])
        );
    }
}

fn hash(d: &[u8]) -> u64 {
    d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    let mut corpora = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    corpora.sort();
    let mut names: Vec<&str> = berth_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort();
    assert_eq!(
        corpora, names,
        "a target without a corpus, or a corpus without a target"
    );
    for (name, f) in berth_fuzz::TARGETS {
        let seeds = seeds(name);
        for s in &seeds {
            run_one(name, *f, s);
        }
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ hash(name.as_bytes()));
        for i in 0..rounds(name) {
            let input = mutate(&seeds[i % seeds.len()], &seeds, &mut rng);
            run_one(name, *f, &input);
        }
    }
}

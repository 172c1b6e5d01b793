//! Applies one layer file to a directory and prints its diff_id and the
//! time it took: `cargo run --release -p berth-image --example apply_layer
//! -- LAYER.tar[.gz|.zst] DIR` (DIR must exist and should be empty).

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: apply_layer LAYER DIR");
        std::process::exit(2);
    }
    let f = match std::fs::File::open(&args[1]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    match berth_image::apply_layer(f, std::path::Path::new(&args[2]), &Default::default()) {
        Ok(s) => println!(
            "{} {} entries, {} bytes ({}), {:.3}s",
            s.diff_id,
            s.entries,
            s.size,
            s.compression.name(),
            start.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

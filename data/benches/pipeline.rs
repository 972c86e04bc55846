//! Rows per second through `map -> filter -> flat_map` of typed rows on this machine's CPUs,
//! streamed (the median of 5 runs over 50 M rows). `cargo bench -p data --bench pipeline`.

use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("DATA_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000_000);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = data::range(n)
            .map(|x| x.wrapping_mul(x))
            .filter(|x| x % 2 == 0)
            .flat_map(|x| [x, x.wrapping_add(1)])
            .count()
            .expect("the pipeline runs");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(out as u64, n);
        rates.push(n as f64 / s);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "map -> filter -> flat_map, {n} u64 rows, {} CPUs: {:.1} M rows/s (median of 5; {:.1}-{:.1})",
        ray::detect_cpus(),
        rates[2] / 1e6,
        rates[0] / 1e6,
        rates[4] / 1e6
    );
}

//! Datasets against hand-computed results: the tutorial's pipeline, every transformation and
//! consumer (empty datasets and one-row blocks included), lazy `take`, bounded streaming
//! memory, errors that name the block or file, and `window()`'s concurrent stages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use data::{DataError, Dataset, from_items, range};

#[test]
fn the_tutorials_pipeline_gives_its_ten_values() {
    let ds = range(10_000)
        .map(|x| u128::from(x) * u128::from(x))
        .filter(|x| x % 2 == 0);
    let pipe = ds
        .window(4)
        .map(|x| x)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x, x.checked_mul(x).and_then(|s| s.checked_mul(x)).unwrap()]);
    assert_eq!(
        pipe.take(10).unwrap(),
        [0, 0, 4, 64, 16, 4096, 36, 46656, 64, 262144]
    );
    // The whole pipeline: every even square and its cube, the last cube 9998^6 > u64::MAX.
    let all = pipe.take_all().unwrap();
    assert_eq!(all.len(), 10_000);
    assert_eq!(*all.last().unwrap(), 9998u128.pow(6));
}

#[test]
fn row_wise_stages_and_consumers() {
    let ds = range(100);
    assert_eq!(ds.count().unwrap(), 100);
    let odd_squares = ds.filter(|x| x % 2 == 1).map(|x| x * x);
    assert_eq!(odd_squares.take(3).unwrap(), [1, 9, 25]);
    assert_eq!(odd_squares.count().unwrap(), 50);
    assert_eq!(
        odd_squares.sum().unwrap(),
        Some(
            (0..100u64)
                .filter(|x| x % 2 == 1)
                .map(|x| (x * x) as f64)
                .sum()
        )
    );
    assert_eq!(ds.min().unwrap(), Some(0.0));
    assert_eq!(ds.max().unwrap(), Some(99.0));
    assert_eq!(ds.mean().unwrap(), Some(49.5));
    // numpy.std(range(100), ddof=1) = 29.011491975882016
    assert!((ds.std(1).unwrap().unwrap() - 29.011_491_975_882_016).abs() < 1e-9);
    assert_eq!(
        range(4)
            .flat_map(|x| vec![x; x as usize])
            .take_all()
            .unwrap(),
        [1, 2, 2, 3, 3, 3]
    );
    // Batches within a block, and across blocks.
    let sums = range(10)
        .repartition(1)
        .map_batches(4, |b| vec![b.iter().sum::<u64>()])
        .take_all()
        .unwrap();
    assert_eq!(sums, [6, 22, 17]);
    let batches: Vec<usize> = range(10)
        .iter_batches(3)
        .unwrap()
        .map(|b| b.unwrap().len())
        .collect();
    assert_eq!(batches, [3, 3, 3, 1]);
    let rows: Vec<u64> = range(5).iter_rows().unwrap().map(Result::unwrap).collect();
    assert_eq!(rows, [0, 1, 2, 3, 4]);
    assert_eq!(range(10).limit(3).take_all().unwrap(), [0, 1, 2]);
    assert!(ds.stats().contains("filter") || odd_squares.stats().contains("filter"));
}

#[test]
fn empty_datasets_and_one_row_blocks() {
    let empty = range(0);
    assert_eq!(empty.count().unwrap(), 0);
    assert_eq!(empty.take(5).unwrap(), Vec::<u64>::new());
    assert_eq!(empty.sum().unwrap(), None);
    assert_eq!(empty.mean().unwrap(), None);
    assert_eq!(empty.std(1).unwrap(), None);
    assert_eq!(empty.map(|x| x + 1).iter_batches(2).unwrap().count(), 0);
    assert_eq!(
        empty.sort_by_key(|x| *x).take_all().unwrap(),
        Vec::<u64>::new()
    );
    let none = from_items(vec![1, 2, 3]).filter(|_| false);
    assert_eq!(none.count().unwrap(), 0);
    // One row per block.
    let one = range(7).repartition(7);
    assert_eq!(
        one.iter_blocks()
            .unwrap()
            .map(|b| b.unwrap().len())
            .collect::<Vec<_>>(),
        [1; 7]
    );
    assert_eq!(
        one.map(|x| x * 2).take_all().unwrap(),
        [0, 2, 4, 6, 8, 10, 12]
    );
    assert_eq!(from_items(vec!["a"]).take_all().unwrap(), ["a"]);
}

#[test]
fn all_to_all_stages() {
    let words = from_items(vec!["b", "a", "c", "a", "b", "a"]);
    assert_eq!(
        words.sort_by_key(|w| *w).take_all().unwrap(),
        ["a", "a", "a", "b", "b", "c"]
    );
    assert_eq!(
        words.groupby(|w| w.to_string()).count().take_all().unwrap(),
        [
            ("a".to_string(), 3),
            ("b".to_string(), 2),
            ("c".to_string(), 1)
        ]
    );
    let nums = from_items(vec![(1, 2.0), (2, 5.0), (1, 4.0), (2, 1.0)]);
    let g = nums.groupby(|r| r.0);
    assert_eq!(g.sum(|r| r.1).take_all().unwrap(), [(1, 6.0), (2, 6.0)]);
    assert_eq!(g.min(|r| r.1).take_all().unwrap(), [(1, 2.0), (2, 1.0)]);
    assert_eq!(g.max(|r| r.1).take_all().unwrap(), [(1, 4.0), (2, 5.0)]);
    assert_eq!(g.mean(|r| r.1).take_all().unwrap(), [(1, 3.0), (2, 3.0)]);
    assert_eq!(
        g.map_groups(|k, rows| vec![(*k, rows.len())])
            .take_all()
            .unwrap(),
        [(1, 2), (2, 2)]
    );
    let a = range(3);
    let b = from_items(vec!['x', 'y', 'z']);
    assert_eq!(
        a.zip(&b).take_all().unwrap(),
        [(0, 'x'), (1, 'y'), (2, 'z')]
    );
    let e = range(4).zip(&b).take_all().unwrap_err();
    assert!(
        matches!(e, DataError::Invalid(_)) && e.to_string().contains("4 rows against 3"),
        "{e}"
    );
    assert_eq!(a.union(&range(2)).take_all().unwrap(), [0, 1, 2, 0, 1]);
    // Shuffles are seeded permutations.
    let s1 = range(50).random_shuffle(3).take_all().unwrap();
    assert_eq!(s1, range(50).random_shuffle(3).take_all().unwrap());
    assert_ne!(s1, (0..50).collect::<Vec<u64>>());
    let mut sorted = s1.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<u64>>());
    let parts = range(10).split(3).unwrap();
    let sizes: Vec<usize> = parts.iter().map(|p| p.count().unwrap()).collect();
    assert_eq!(sizes, [4, 3, 3]);
    assert_eq!(parts[2].take_all().unwrap(), [7, 8, 9]);
    let (train, test) = range(10).train_test_split(0.25, None).unwrap();
    assert_eq!(train.take_all().unwrap(), (0..7).collect::<Vec<u64>>());
    assert_eq!(test.take_all().unwrap(), [7, 8, 9]);
    assert!(range(10).train_test_split(1.5, None).is_err());
    let m = range(6).map(|x| x + 1).materialize().unwrap();
    assert_eq!(m.take_all().unwrap(), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn take_computes_no_more_blocks_than_it_needs() {
    let rows_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&rows_seen);
    let ds = range(1_000_000).with_window(1).map(move |x| {
        seen.fetch_add(1, Ordering::Relaxed);
        x
    });
    let blocks: Vec<usize> = range(1_000_000)
        .iter_blocks()
        .unwrap()
        .map(|b| b.unwrap().len())
        .collect();
    assert!(blocks.len() > 2, "{blocks:?}");
    assert_eq!(ds.take(10).unwrap(), (0..10).collect::<Vec<u64>>());
    // With one block in flight: the first block, and at most the one started after it.
    let seen = rows_seen.load(Ordering::Relaxed);
    assert!(
        seen <= 2 * blocks[0],
        "{seen} rows computed for take(10), blocks of {}",
        blocks[0]
    );
}

/// Rows alive right now (made and not yet dropped), and the most at once.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Tracked(#[allow(dead_code)] [u64; 4]);

impl Tracked {
    fn new(x: u64) -> Self {
        let now = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Tracked([x; 4])
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn streaming_memory_is_bounded_by_the_blocks_in_flight() {
    // 10 M rows of 32 bytes (320 MB if held at once) through map -> filter, two blocks in
    // flight: at most a few blocks' rows are ever alive.
    let n = 10_000_000u64;
    let ds: Dataset<Tracked> = range(n)
        .with_window(2)
        .map(Tracked::new)
        .filter(|t| t.0[0] % 3 != 0);
    let block = range(n)
        .iter_blocks()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .len();
    let kept = ds.count().unwrap();
    assert_eq!(kept as u64, n - n.div_ceil(3));
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(
        peak <= 4 * block,
        "{peak} rows alive at once; blocks of {block}, two in flight"
    );
    assert!(peak * 32 < 100 << 20, "{peak} rows of 32 bytes");
}

#[test]
fn a_panicking_function_fails_the_dataset_with_its_block() {
    let ds = range(100).repartition(4).map(|x| {
        assert!(x != 60, "row {x} is bad");
        x
    });
    let e = ds.take_all().unwrap_err();
    match &e {
        DataError::Udf { block, message } => {
            assert_eq!(*block, 2, "{e}");
            assert!(message.contains("row 60 is bad"), "{e}");
        }
        other => panic!("{other}"),
    }
    // In a pipeline stage too.
    let e = range(10)
        .window(1)
        .map(|x| if x == 5 { panic!("five") } else { x })
        .take_all()
        .unwrap_err();
    assert!(e.to_string().contains("five"), "{e}");
}

#[test]
fn text_and_binary_files_by_path_folder_and_pattern() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "three").unwrap();
    std::fs::write(dir.path().join("c.csv"), "x,y\n").unwrap();
    std::fs::write(dir.path().join(".hidden"), "no").unwrap();
    let txt = data::read_text(dir.path().join("*.txt"))
        .take_all()
        .unwrap();
    assert_eq!(txt, ["one", "two", "three"]);
    assert_eq!(data::read_text(dir.path()).count().unwrap(), 4);
    assert_eq!(
        data::read_text(dir.path().join("b.txt"))
            .take_all()
            .unwrap(),
        ["three"]
    );
    let bins = data::read_binary_files(dir.path()).take_all().unwrap();
    assert_eq!(bins.len(), 3);
    assert_eq!(bins[2].1, b"x,y\n");
    let e = data::read_text(dir.path().join("nope.txt"))
        .count()
        .unwrap_err();
    assert!(e.to_string().contains("nope.txt"), "{e}");
    let e = data::read_text(dir.path().join("*.parquet"))
        .count()
        .unwrap_err();
    assert!(e.to_string().contains("no files match"), "{e}");
}

#[test]
fn window_stages_run_at_once() {
    // Two stages of 20 ms per window over 6 windows: the first stage works on a window while
    // the second works on the one before.
    let busy = Arc::new(AtomicBool::new(false));
    let overlapped = Arc::new(AtomicBool::new(false));
    let (b1, b2, o2) = (
        Arc::clone(&busy),
        Arc::clone(&busy),
        Arc::clone(&overlapped),
    );
    let out = range(6)
        .repartition(6)
        .window(1)
        .map(move |x| {
            b1.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            b1.store(false, Ordering::SeqCst);
            x
        })
        .map(move |x| {
            std::thread::sleep(Duration::from_millis(5));
            if b2.load(Ordering::SeqCst) {
                o2.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(15));
            x * 10
        })
        .take_all()
        .unwrap();
    assert_eq!(out, [0, 10, 20, 30, 40, 50]);
    assert!(
        overlapped.load(Ordering::SeqCst),
        "the stages never ran at once"
    );
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Step {
    episode: u32,
    reward: f64,
    note: Option<String>,
}

#[test]
fn json_lines_and_csv_round_trip_one_file_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Step> = (0..10)
        .map(|i| Step {
            episode: i / 4,
            reward: f64::from(i) * 0.5,
            note: (i % 3 == 0).then(|| format!("a, \"quoted\" note {i}")),
        })
        .collect();
    let ds = from_items(rows.clone()).repartition(3);
    let files = ds.write_json(dir.path().join("json")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["part-00000.json", "part-00001.json", "part-00002.json"]
    );
    assert_eq!(
        data::read_json::<Step>(dir.path().join("json"))
            .take_all()
            .unwrap(),
        rows
    );
    ds.write_csv(dir.path().join("csv")).unwrap();
    let back = data::read_csv::<Step>(dir.path().join("csv/*.csv"))
        .take_all()
        .unwrap();
    assert_eq!(back, rows, "nulls (None) and quoted commas survive");
    // No temporary files are left beside the parts.
    for sub in ["json", "csv"] {
        for e in std::fs::read_dir(dir.path().join(sub)).unwrap().flatten() {
            assert!(
                !e.file_name().to_string_lossy().starts_with('.'),
                "{:?}",
                e.path()
            );
        }
    }
    // Empty blocks write empty files, read back as no rows.
    let none = from_items(rows).filter(|_| false);
    none.write_json(dir.path().join("empty")).unwrap();
    assert_eq!(
        data::read_json::<Step>(dir.path().join("empty"))
            .count()
            .unwrap(),
        0
    );
}

#[test]
fn bad_files_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        "{\"episode\": 1, \"reward\": 2.0, \"note\": null}\n{\"episode\": \"x\"}\n",
    )
    .unwrap();
    let e = data::read_json::<Step>(dir.path().join("a.json"))
        .take_all()
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("a.json") && msg.contains("line 2"), "{msg}");
    std::fs::write(
        dir.path().join("b.csv"),
        "episode,reward,note\n1,2.0,\n2,oops,\n",
    )
    .unwrap();
    let msg = data::read_csv::<Step>(dir.path().join("b.csv"))
        .take_all()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("b.csv") && msg.contains("line 3") && msg.contains("reward"),
        "{msg}"
    );
    std::fs::write(dir.path().join("c.csv"), "episode,note\n1,x\n").unwrap();
    let msg = data::read_csv::<Step>(dir.path().join("c.csv"))
        .take_all()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("c.csv") && msg.contains("reward"),
        "a missing column is named: {msg}"
    );
}

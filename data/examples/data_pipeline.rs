//! The Ray tutorial's first program, in Rust:
//!
//! ```python
//! ds = ray.data.range(10000)
//! ds = ds.map(lambda x: {"data": x ** 2})
//! ds = ds.filter(lambda x: x["data"] % 2 == 0)
//! pipe = ds.window().map(lambda x: x["data"]).filter(lambda x: x % 2 == 0).flat_map(lambda x: [x, x ** 3])
//! print(pipe.take(10))
//! ```
//!
//! The cubes reach (10^4)^6 = 10^24, past u64 (and Python's int64 columns, which Ray falls
//! back from): the values are u128, and the cube is checked so that an overflow is an error,
//! never a wrong number. `cargo run --release -p data --example data_pipeline`.

#[derive(Debug, Clone, Copy)]
struct Row {
    data: u128,
}

fn cube(x: u128) -> u128 {
    x.checked_mul(x)
        .and_then(|s| s.checked_mul(x))
        .unwrap_or_else(|| panic!("{x}^3 overflows u128"))
}

fn main() -> Result<(), data::DataError> {
    let ds = data::range(10_000)
        .map(|x| Row {
            data: u128::from(x) * u128::from(x),
        })
        .filter(|r| r.data % 2 == 0);
    let pipe = ds
        .window(4)
        .map(|r| r.data)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x, cube(x)]);
    println!("{:?}", pipe.take(10)?);
    Ok(())
}

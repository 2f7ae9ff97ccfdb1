//! AFL++ target `http_query`: each test case through `kitchen_fuzz::http_query` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::http_query(data));
}

//! AFL++ target `framer`: each test case through `kitchen_fuzz::framer` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::framer(data));
}

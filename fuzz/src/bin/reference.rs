//! AFL++ target `reference`: each test case through `kitchen_fuzz::reference` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::reference(data));
}

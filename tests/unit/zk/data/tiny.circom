pragma circom 2.1.0;

// Three constraints and one public input, like the filter circuit's interface: what the
// ceremony tests set up in seconds.
template Tiny() {
    signal input x;
    signal input y;
    signal input z;
    signal t <== x * y;
    signal s <== t * y;
    z === s * x + 1;
}

component main {public [x]} = Tiny();

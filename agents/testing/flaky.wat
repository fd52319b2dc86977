;; flaky: echo, but traps (`unreachable` in $crash) when the message contains the
;; ASCII bytes "crash".
;; Test-only module (tests of sandbox and caxton use it; keep the name). Guest ABI v1.
(module
  (memory (export "memory") 1 16)
  (global $buf i32 (i32.const 1024))

  ;; Room for `size` bytes at $buf, growing memory if needed; 0 when memory cannot grow.
  (func (export "inbox") (param $size i32) (result i32)
    (local $need i32)
    ;; pages covering [0, 1024 + size): (size + 1024 + 65535) >> 16
    (local.set $need (i32.shr_u (i32.add (local.get $size) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $buf))

  (func (export "handle") (param $len i32) (result i64)
    (local $i i32) (local $p i32)
    (block $done
      (loop $scan
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 5)) (local.get $len)))
        (local.set $p (i32.add (global.get $buf) (local.get $i)))
        ;; "cras" little-endian = 0x73617263, then "h" = 0x68
        (if (i32.and
              (i32.eq (i32.load align=1 (local.get $p)) (i32.const 0x73617263))
              (i32.eq (i32.load8_u offset=4 (local.get $p)) (i32.const 0x68)))
          (then (call $crash)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $buf)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  (func $crash unreachable))

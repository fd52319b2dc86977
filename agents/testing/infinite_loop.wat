;; infinite_loop: `handle` never returns; only fuel or the deadline stops it.
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
    (loop $forever (br $forever))
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $buf)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
)

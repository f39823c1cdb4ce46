//! The guest's global allocator: a free list per size class, over chunks (first the rest of
//! the module's initial memory, then chunks from dlmalloc), for the many small, short-lived
//! strings a call lowers and frees.
//!
//! Why: dlmalloc's `malloc`, `free` and the `cabi_realloc` around them were about half of the
//! guest's own instructions per search (BENCHMARKS.md, sixth pass). A block here has no header:
//! `dealloc` is given the layout, and the layout names the class. A freed block goes back on
//! its class's list and is reused, so an instance holds at most the peak of each class's live
//! bytes however long it runs (a bump allocator that never frees would grow to the memory cap
//! over a long backfill). Blocks above 4 KiB, or aligned above 8, go to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

/// The smallest class, 8 bytes: room for the free list's link, and the blocks' alignment.
const MIN_CLASS_SHIFT: u32 = 3;
/// The largest class, 4 KiB.
const MAX_CLASS_SHIFT: u32 = 12;
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1) as usize;
const BLOCK_ALIGN: usize = 1 << MIN_CLASS_SHIFT;
/// Blocks are carved from the memory the module starts with, then from chunks this large; a
/// fresh instance touches only what it carves.
const CHUNK_BYTES: usize = 32 * 1024;

/// Free lists of blocks of 8, 16, ... 4096 bytes, and the chunk new blocks are carved from.
struct SizeClasses {
    /// Each class's most recently freed block; a free block's first word links to the next.
    free: [Cell<*mut u8>; CLASSES],
    /// Where the next new block is carved from, and the end of its chunk.
    carve_at: Cell<*mut u8>,
    carve_end: Cell<*mut u8>,
    /// Chunks carved from so far (the first is the module's initial memory; the tests bound
    /// the others).
    chunks: Cell<usize>,
}

// Sound: wasm32 without the atomics feature runs one thread, so the cells are never shared.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClasses {}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: SizeClasses = SizeClasses::new();

impl SizeClasses {
    const fn new() -> Self {
        Self {
            free: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            carve_at: Cell::new(ptr::null_mut()),
            carve_end: Cell::new(ptr::null_mut()),
            chunks: Cell::new(0),
        }
    }

    /// How many chunks this allocator has carved from.
    #[cfg(test)]
    fn chunks(&self) -> usize {
        self.chunks.get()
    }

    fn pop(&self, class: usize) -> *mut u8 {
        let head = self.free[class].get();
        if !head.is_null() {
            // SAFETY: a listed block is free, ours, 8-aligned and holds its successor's link.
            self.free[class].set(unsafe { head.cast::<*mut u8>().read() });
        }
        head
    }

    fn push(&self, class: usize, block: *mut u8) {
        // SAFETY: the block is free, ours, 8-aligned and at least 8 bytes long.
        unsafe { block.cast::<*mut u8>().write(self.free[class].get()) };
        self.free[class].set(block);
    }

    /// A new block of `bytes` (a class size) from the current chunk, or from a new one; what
    /// is left of the old chunk goes onto the free lists, so nothing carved is lost. Out of
    /// line: most allocations are served from a free list, and every allocation site inlines
    /// `alloc`.
    #[cold]
    #[inline(never)]
    fn carve(&self, bytes: usize) -> *mut u8 {
        let mut at = self.carve_at.get();
        if (self.carve_end.get() as usize) - (at as usize) < bytes {
            self.list_the_rest();
            let (chunk, end) = match self.chunks.get() {
                0 => initial_heap(),
                _ => system_chunk(),
            };
            if chunk.is_null() {
                return chunk;
            }
            self.chunks.set(self.chunks.get() + 1);
            self.carve_at.set(chunk);
            self.carve_end.set(end);
            // Only the first chunk (the module's spare memory) can be smaller than a block:
            // list it, and carve the block from the next.
            if (end as usize) - (chunk as usize) < bytes {
                return self.carve(bytes);
            }
            at = chunk;
        }
        self.carve_at.set(at.wrapping_add(bytes));
        at
    }

    /// Lists the current chunk's uncarved rest as the largest blocks that fit.
    fn list_the_rest(&self) {
        let mut at = self.carve_at.get();
        let mut rest = (self.carve_end.get() as usize) - (at as usize);
        while rest >= BLOCK_ALIGN {
            let class = ((usize::BITS - 1 - rest.leading_zeros()).min(MAX_CLASS_SHIFT)
                - MIN_CLASS_SHIFT) as usize;
            self.push(class, at);
            at = at.wrapping_add(class_bytes(class));
            rest -= class_bytes(class);
        }
        self.carve_at.set(at);
    }
}

/// The first chunk: the rest of the memory the module starts with, from `__heap_base` (after
/// the stack and the data) to `__heap_end` (the end of the initial pages), about 30 KiB that
/// dlmalloc never uses (it grows memory for its first block). A fresh instance whose call fits
/// there grows no memory at all. Both ends are the linker's, not the memory's size now: a
/// large first block (a long query) may have grown the memory already, and what was grown is
/// dlmalloc's.
#[cfg(target_arch = "wasm32")]
fn initial_heap() -> (*mut u8, *mut u8) {
    extern "C" {
        /// Set by the linker: where the data ends and the heap may begin.
        static __heap_base: u8;
        /// Set by the linker: the end of the memory the module starts with.
        static __heap_end: u8;
    }
    // SAFETY: only the symbols' addresses are taken; the memory between them belongs to no one
    // else (dlmalloc only uses pages it grows, which lie above `__heap_end`).
    let (base, end) = unsafe {
        (
            std::ptr::addr_of!(__heap_base) as usize,
            std::ptr::addr_of!(__heap_end) as usize,
        )
    };
    let start = base.next_multiple_of(BLOCK_ALIGN);
    (start as *mut u8, end.max(start) as *mut u8)
}

/// On the host target (the tests), a chunk like the others, or as small as a test asks.
#[cfg(not(target_arch = "wasm32"))]
fn initial_heap() -> (*mut u8, *mut u8) {
    let (chunk, end) = system_chunk();
    #[cfg(test)]
    if let Some(bytes) = tests::FIRST_CHUNK_BYTES.with(Cell::get) {
        return (chunk, chunk.wrapping_add(bytes));
    }
    (chunk, end)
}

/// A chunk from the system allocator (null when it has no memory left), and its end.
fn system_chunk() -> (*mut u8, *mut u8) {
    // SAFETY: a non-zero size and a power-of-two alignment.
    let chunk =
        unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK_BYTES, BLOCK_ALIGN)) };
    (chunk, chunk.wrapping_add(CHUNK_BYTES))
}

/// The class that serves `layout`, or `None` for the system allocator.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > BLOCK_ALIGN || layout.size() > 1 << MAX_CLASS_SHIFT {
        return None;
    }
    let bytes = layout.size().max(BLOCK_ALIGN).next_power_of_two();
    Some((bytes.trailing_zeros() - MIN_CLASS_SHIFT) as usize)
}

fn class_bytes(class: usize) -> usize {
    1 << (class as u32 + MIN_CLASS_SHIFT)
}

unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            None => unsafe { System.alloc(layout) },
            Some(class) => match self.pop(class) {
                block if block.is_null() => self.carve(class_bytes(class)),
                block => block,
            },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            None => unsafe { System.dealloc(block, layout) },
            Some(class) => self.push(class, block),
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size`, rounded up to `layout.align()`, fits an isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            (Some(old), Some(new)) if old == new => block,
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The size of the first chunk on this thread, when a test needs a small one (the
        /// module's spare memory can be smaller than a block).
        pub(super) static FIRST_CHUNK_BYTES: Cell<Option<usize>> = const { Cell::new(None) };
    }

    fn bytes(size: usize) -> Layout {
        Layout::from_size_align(size, 1).unwrap()
    }

    #[test]
    fn a_freed_block_serves_the_next_allocation_of_its_class() {
        let classes = SizeClasses::new();
        unsafe {
            let first = classes.alloc(bytes(20));
            classes.dealloc(first, bytes(20));
            assert_eq!(
                classes.alloc(bytes(32)),
                first,
                "20 and 32 bytes share a class"
            );
            assert_ne!(classes.alloc(bytes(20)), first, "the block is taken again");
        }
    }

    #[test]
    fn a_first_chunk_smaller_than_the_block_is_listed_and_the_block_comes_from_the_next() {
        FIRST_CHUNK_BYTES.with(|first| first.set(Some(24)));
        let classes = SizeClasses::new();
        unsafe {
            let large = classes.alloc(bytes(4_096));
            assert!(!large.is_null());
            large.write_bytes(1, 4_096);
            // The first chunk's 24 bytes are listed as a 16-byte and an 8-byte block.
            let small = [classes.alloc(bytes(16)), classes.alloc(bytes(8))];
            small[0].write_bytes(2, 16);
            small[1].write_bytes(3, 8);
            assert_eq!(small[1], small[0].wrapping_add(16), "{small:?}");
            let written = std::slice::from_raw_parts(large, 4_096);
            assert!(
                written.iter().all(|&byte| byte == 1),
                "the block was overwritten"
            );
        }
        assert_eq!(classes.chunks(), 2);
        FIRST_CHUNK_BYTES.with(|first| first.set(None));
    }

    #[test]
    fn live_blocks_are_aligned_and_never_overlap() {
        let classes = SizeClasses::new();
        let mut live = Vec::new();
        for round in 0..2_000usize {
            let layout = Layout::from_size_align(1 + round * 37 % 5_000, 1 << (round % 5)).unwrap();
            let block = unsafe { classes.alloc(layout) };
            assert!(!block.is_null());
            assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
            unsafe { block.write_bytes(round as u8, layout.size()) };
            live.push((block, layout, round as u8));
            if round % 3 == 0 {
                let (block, layout, _) = live.swap_remove(round / 2 % live.len());
                unsafe { classes.dealloc(block, layout) };
            }
        }
        for (block, layout, fill) in live {
            let written = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            assert!(
                written.iter().all(|&byte| byte == fill),
                "{layout:?} was overwritten"
            );
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_a_class_across_classes_and_beyond_them() {
        let classes = SizeClasses::new();
        unsafe {
            let block = classes.alloc(bytes(9));
            let neighbour = classes.alloc(bytes(16));
            neighbour.write_bytes(0xAA, 16);
            block.copy_from_nonoverlapping(b"123456789".as_ptr(), 9);
            assert_eq!(
                classes.realloc(block, bytes(9), 16),
                block,
                "9 and 16 share a class"
            );
            let mut size = 16;
            let mut moved = block;
            for new_size in [100, 4_096, 10_000, 100_000, 50] {
                moved = classes.realloc(moved, bytes(size), new_size);
                assert_eq!(std::slice::from_raw_parts(moved, 9), b"123456789");
                // All of the new size is the caller's to write.
                moved.add(9).write_bytes(0x55, new_size - 9);
                size = new_size;
            }
            classes.dealloc(moved, bytes(size));
            let untouched = std::slice::from_raw_parts(neighbour, 16);
            assert!(
                untouched.iter().all(|&byte| byte == 0xAA),
                "a neighbour was overwritten"
            );
        }
    }

    #[test]
    fn memory_is_bounded_by_the_peak_however_many_calls_run() {
        let classes = SizeClasses::new();
        let call = || {
            let layouts: Vec<Layout> = (0..200).map(|n| bytes(1 + n * 19 % 3_000)).collect();
            let blocks: Vec<*mut u8> = layouts
                .iter()
                .map(|&l| unsafe { classes.alloc(l) })
                .collect();
            for (block, layout) in blocks.into_iter().zip(layouts) {
                unsafe { classes.dealloc(block, layout) };
            }
        };
        call();
        let after_one_call = classes.chunks();
        for _ in 0..10_000 {
            call();
        }
        assert_eq!(classes.chunks(), after_one_call);
    }
}

//! A type-erased call `f(receiver, args, context)` that stores small argument
//! tuples inline, so queueing a message into a loop's inbox does not allocate.

use std::any::TypeId;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr;

/// Inline space: five machine words, so `(fn, (u64,))` and `(fn, (String, i64))` fit.
type Storage = [MaybeUninit<usize>; 5];

/// The function a call ends in: receiver, argument tuple, optional context.
pub(crate) type CallFn<R, A, C> = fn(&mut R, A, Option<&C>);

/// A call with its arguments, waiting to be run on the receiver's thread.
///
/// `R` (the receiver) and `C` (a context passed by reference) are unsized-friendly
/// so the event loop can use `dyn Any` and its metadata type.
pub(crate) struct ErasedCall<R: ?Sized + 'static, C: 'static> {
    vtable: &'static VTable<R, C>,
    storage: Storage,
}

struct VTable<R: ?Sized, C> {
    /// Moves the payload out of the storage and runs it.
    call: unsafe fn(*mut Storage, &mut R, Option<&C>),
    /// Drops the payload in place without running it.
    drop: unsafe fn(*mut Storage),
    /// The argument tuple's type: what [`ErasedCall::into_args`] checks.
    args: fn() -> TypeId,
}

/// Marks the types a layout is for, without owning any of them.
type Types<R, A, C> = std::marker::PhantomData<(fn(&mut R), A, C)>;
/// Payload `(f, args)` lives directly in the storage.
struct Inline<R: ?Sized, A, C>(Types<R, A, C>);
/// Payload lives in a `Box` whose pointer lives in the storage.
struct Boxed<R: ?Sized, A, C>(Types<R, A, C>);

type Payload<R, A, C> = (CallFn<R, A, C>, A);

impl<R: ?Sized, A: 'static, C> Inline<R, A, C> {
    const FITS: bool = size_of::<Payload<R, A, C>>() <= size_of::<Storage>()
        && align_of::<Payload<R, A, C>>() <= align_of::<Storage>();
    const VTABLE: VTable<R, C> = VTable {
        call: Self::call,
        drop: Self::drop,
        args: TypeId::of::<A>,
    };

    /// # Safety
    /// `storage` holds an initialized `Payload<R, A, C>` that is not used again.
    unsafe fn call(storage: *mut Storage, r: &mut R, c: Option<&C>) {
        // SAFETY: the caller guarantees an initialized payload written by `ErasedCall::new`
        // with `FITS` true (size and alignment checked), and never reads it again.
        let (f, args) = unsafe { ptr::read(storage.cast::<Payload<R, A, C>>()) };
        f(r, args, c);
    }

    /// # Safety
    /// As for `call`.
    unsafe fn drop(storage: *mut Storage) {
        // SAFETY: as in `call`; the payload is dropped exactly once.
        unsafe { ptr::drop_in_place(storage.cast::<Payload<R, A, C>>()) }
    }
}

impl<R: ?Sized, A: 'static, C> Boxed<R, A, C> {
    const VTABLE: VTable<R, C> = VTable {
        call: Self::call,
        drop: Self::drop,
        args: TypeId::of::<A>,
    };

    /// # Safety
    /// `storage` holds an initialized `Box<Payload<R, A, C>>` that is not used again.
    unsafe fn call(storage: *mut Storage, r: &mut R, c: Option<&C>) {
        // SAFETY: the caller guarantees the storage holds the box written by `new`
        // (a pointer always fits the storage), read exactly once.
        let boxed = unsafe { ptr::read(storage.cast::<Box<Payload<R, A, C>>>()) };
        let (f, args) = *boxed;
        f(r, args, c);
    }

    /// # Safety
    /// As for `call`.
    unsafe fn drop(storage: *mut Storage) {
        // SAFETY: as in `call`; the box is dropped exactly once.
        unsafe { ptr::drop_in_place(storage.cast::<Box<Payload<R, A, C>>>()) }
    }
}

impl<R: ?Sized + 'static, C: 'static> ErasedCall<R, C> {
    /// Packs `f` and `args`, inline when they fit in five words.
    pub(crate) fn new<A: Send + 'static>(f: CallFn<R, A, C>, args: A) -> Self {
        let mut storage: Storage = [MaybeUninit::uninit(); 5];
        let slot = storage.as_mut_ptr();
        if Inline::<R, A, C>::FITS {
            // SAFETY: `FITS` checked that the payload's size and alignment fit `Storage`
            // (an array of usize, so aligned for usize); the storage is fresh.
            unsafe { ptr::write(slot.cast::<Payload<R, A, C>>(), (f, args)) };
            Self {
                vtable: &Inline::<R, A, C>::VTABLE,
                storage,
            }
        } else {
            let boxed: Box<Payload<R, A, C>> = Box::new((f, args));
            // SAFETY: a `Box` is one pointer: it fits and is aligned in `Storage`.
            unsafe { ptr::write(slot.cast::<Box<Payload<R, A, C>>>(), boxed) };
            Self {
                vtable: &Boxed::<R, A, C>::VTABLE,
                storage,
            }
        }
    }

    /// The arguments back, unrun, when they are an `A` (a post that could not
    /// be made hands them back to its sender, who tries another receiver);
    /// the call unchanged otherwise.
    pub(crate) fn into_args<A: 'static>(self) -> Result<A, Self> {
        if (self.vtable.args)() != TypeId::of::<A>() {
            return Err(self);
        }
        let mut this = ManuallyDrop::new(self);
        let slot = this.storage.as_mut_ptr();
        // `new` chose the layout from (R, A, C) alone, as here.
        let (_, args) = if Inline::<R, A, C>::FITS {
            // SAFETY: the vtable's type id says `new` stored a `Payload<R, A, C>`
            // (R and C are this call's own), inline since it fits; it was
            // neither run nor dropped (`call` consumes, `Drop` needs `self`), and
            // `ManuallyDrop` keeps `Drop` from touching it after this read.
            unsafe { ptr::read(slot.cast::<Payload<R, A, C>>()) }
        } else {
            // SAFETY: as above, a box of that payload (the layout `new`
            // chooses when it does not fit), read exactly once.
            *unsafe { ptr::read(slot.cast::<Box<Payload<R, A, C>>>()) }
        };
        Ok(args)
    }

    /// Runs the call, consuming it.
    pub(crate) fn call(self, receiver: &mut R, context: Option<&C>) {
        let mut this = ManuallyDrop::new(self);
        let vtable = this.vtable;
        // SAFETY: the storage was initialized by `new` with the payload that matches
        // `vtable`; `ManuallyDrop` keeps `Drop` from touching it after it is moved out.
        unsafe { (vtable.call)(&mut this.storage, receiver, context) }
    }
}

impl<R: ?Sized + 'static, C: 'static> Drop for ErasedCall<R, C> {
    fn drop(&mut self) {
        // SAFETY: a call not consumed by `call` still owns its initialized payload.
        unsafe { (self.vtable.drop)(&mut self.storage) }
    }
}

// SAFETY: `new` only accepts `A: Send`, and the vtable holds plain fn pointers; the
// receiver and context are borrowed at call time on the receiving thread, never stored.
unsafe impl<R: ?Sized + 'static, C: 'static> Send for ErasedCall<R, C> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn add(acc: &mut u64, args: (u64,), ctx: Option<&u64>) {
        *acc += args.0 + ctx.copied().unwrap_or(0);
    }

    #[test]
    fn inline_call_runs_with_args_and_context() {
        let call = ErasedCall::<u64, u64>::new(add, (40,));
        let mut acc = 0;
        call.call(&mut acc, Some(&2));
        assert_eq!(acc, 42);
    }

    fn concat(acc: &mut String, args: ([u64; 8], String), _: Option<&()>) {
        acc.push_str(&format!("{}{}", args.0.iter().sum::<u64>(), args.1));
    }

    #[test]
    fn large_args_are_boxed_and_still_delivered() {
        const { assert!(!Inline::<String, ([u64; 8], String), ()>::FITS) };
        let call = ErasedCall::<String, ()>::new(concat, ([1; 8], "x".to_string()));
        let mut s = String::new();
        call.call(&mut s, None);
        assert_eq!(s, "8x");
    }

    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn ignore(_: &mut (), _: (CountDrop,), _: Option<&()>) {}
    fn ignore_big(_: &mut (), _: (CountDrop, [u64; 8]), _: Option<&()>) {}

    #[test]
    fn unrun_calls_drop_their_arguments_exactly_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        drop(ErasedCall::<(), ()>::new(
            ignore,
            (CountDrop(drops.clone()),),
        ));
        drop(ErasedCall::<(), ()>::new(
            ignore_big,
            (CountDrop(drops.clone()), [0; 8]),
        ));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        ErasedCall::<(), ()>::new(ignore, (CountDrop(drops.clone()),)).call(&mut (), None);
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn arguments_come_back_unrun_only_as_their_own_type() {
        let drops = Arc::new(AtomicUsize::new(0));
        let call = ErasedCall::<(), ()>::new(ignore, (CountDrop(drops.clone()),));
        let call = call.into_args::<(u64,)>().expect_err("not a (u64,)");
        let (back,) = call.into_args::<(CountDrop,)>().ok().expect("its own type");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "nothing dropped on the way"
        );
        drop(back);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Boxed arguments too.
        let big = ErasedCall::<(), ()>::new(ignore_big, (CountDrop(drops.clone()), [7; 8]));
        let (d, a) = big
            .into_args::<(CountDrop, [u64; 8])>()
            .ok()
            .expect("boxed");
        assert_eq!(a, [7; 8]);
        drop(d);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let text = ErasedCall::<String, ()>::new(concat, ([1; 8], "x".to_string()));
        let (_, s) = text.into_args::<([u64; 8], String)>().ok().expect("boxed");
        assert_eq!(s, "x");
    }

    fn boom(_: &mut (), _: (CountDrop,), _: Option<&()>) {
        panic!("slot panicked");
    }

    #[test]
    fn a_panicking_call_drops_its_arguments_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let call = ErasedCall::<(), ()>::new(boom, (CountDrop(drops.clone()),));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.call(&mut (), None)));
        assert!(r.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

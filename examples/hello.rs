//! The smallest useful flow: four steps in a line.
//!
//! ```text
//! cargo run --example hello -- run --name Ada
//! cargo run --example hello -- dump latest/end greeting
//! ```

use flowlib::prelude::*;

/// Say hello, count the letters, shout it.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Hello {
    /// Who to greet.
    #[param(default = "world", help = "who to greet")]
    name: String,
    greeting: String,
    letters: usize,
    shout: String,
}

#[flow]
impl Hello {
    /// Build the greeting.
    #[step(start, next = count)]
    fn start(&mut self) -> Result<()> {
        self.greeting = format!("Hello, {}!", self.name);
        Ok(())
    }

    /// Count its letters.
    #[step(next = shout)]
    fn count(&mut self) -> Result<()> {
        self.letters = self.greeting.chars().filter(|c| c.is_alphabetic()).count();
        Ok(())
    }

    /// Make it loud.
    #[step(next = end)]
    fn shout(&mut self) -> Result<()> {
        self.shout = self.greeting.to_uppercase();
        Ok(())
    }

    /// Print the result.
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        println!("{} ({} letters)", self.shout, self.letters);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Hello>()
}

//! `hush init` and `hush id`: the identity in the home folder, and its card.

use anyhow::{Result, bail};
use hush_node::{Client, Home};
use serde_json::{Value, json};

use super::print_json;

pub fn init(home: &Home, name: &str, json: bool) -> Result<()> {
    let account = hush_node::init(home, name, hush_node::now_ms())?;
    if json {
        return print_json(&json!({
            "name": name,
            "account": account.to_string(),
            "home": home.dir(),
        }));
    }
    println!(
        "Created the hush identity {name:?} in {}",
        home.dir().display()
    );
    println!("account: {account}");
    println!(
        "Next: start your node with `hush --home {} node run`",
        home.dir().display()
    );
    Ok(())
}

/// Prints the card: from the running node, or else from the home folder
/// (with the addresses it last listened on).
pub async fn id(home: &Home, json: bool, qr: bool) -> Result<()> {
    let card = match Client::connect(home).await {
        Ok(mut client) => client.call("card", Value::Null).await?["card"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(_) => {
            if !home.db_path().exists() {
                bail!(
                    "{} has no hush identity: create one with `hush --home {} init --name NAME`",
                    home.dir().display(),
                    home.dir().display()
                );
            }
            eprintln!(
                "note: the node is not running, so the card lists the addresses it last listened on"
            );
            hush_node::offline_card(home)?.to_string()
        }
    };
    let parsed: hush_protocol::ContactCard = card.parse()?;
    if json {
        print_json(&json!({
            "name": parsed.name,
            "account": parsed.account().to_string(),
            "devices": parsed.device_list.devices.iter().map(|d| d.device_id.to_string()).collect::<Vec<_>>(),
            "addresses": parsed.addresses,
            "card": card,
        }))?;
    } else {
        println!(
            "name:    {}",
            hush_protocol::text::for_terminal(&parsed.name, false)
        );
        println!("account: {}", parsed.account());
        println!("card:    {card}");
        if qr {
            println!();
            print!("{}", qr_code(&card)?);
        }
    }
    Ok(())
}

/// The card as a QR code in text: two modules per character cell (half
/// blocks), with the quiet zone. Dark modules print as blanks, so the code
/// reads right on a terminal with a dark background.
pub(crate) fn qr_code(card: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(card, qrcode::EcLevel::L)
        .map_err(|e| anyhow::anyhow!("the card does not fit in a QR code: {e}"))?;
    let mut text = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::qr_code;

    #[test]
    fn a_card_renders_as_a_square_qr_code() {
        let card = format!("hush1{}", "q".repeat(620));
        let text = qr_code(&card).expect("fits");
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // Two modules per line: about half as many lines as columns.
        assert!(width > 60 && lines.len() * 2 >= width && lines.len() * 2 <= width + 2);
    }
}

//! A deletion certificate as a one-page PDF in Japanese (LIFE-7). The page shows the signed
//! note's lines in a standard Japanese font that every PDF reader has (HeiseiKakuGo-W5 through
//! the Adobe-Japan1 CMap, not embedded), and the signed note itself travels in the file as a
//! comment line. The PDF is a pure function of the note, so `mamori certificate check` verifies
//! the note's signature and then rebuilds the PDF from it: a page whose visible text was
//! altered no longer matches byte for byte.

use base64::Engine;

const NOTE_TAG: &str = "%mamori-signed-note:";

/// Encodes text for the UniJIS-UCS2-HW-H CMap (UCS-2 big endian; outside the BMP becomes `?`).
fn ucs2_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        let u = u32::from(c);
        let u = if u > 0xFFFF { u32::from('?') } else { u };
        out.push_str(&format!("{u:04X}"));
    }
    out
}

/// Wraps a line at `width` columns, counting full-width characters as two.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cols = 0;
    for c in line.chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if cols + w > width {
            out.push(std::mem::take(&mut cur));
            cols = 0;
        }
        cur.push(c);
        cols += w;
    }
    out.push(cur);
    out
}

/// The PDF of a signed note: its first line as the title, the rest as the body.
pub fn certificate_pdf(note: &str) -> Vec<u8> {
    let mut lines = note.lines();
    let title = lines.next().unwrap_or("");
    let mut content = String::new();
    content.push_str("BT\n/F1 16 Tf\n50 790 Td\n");
    content.push_str(&format!("<{}> Tj\n", ucs2_hex(title)));
    content.push_str("/F1 9 Tf\n0 -28 Td\n");
    let mut y = 762;
    for l in lines {
        for part in wrap(l, 100) {
            if y < 40 {
                break;
            }
            content.push_str(&format!("<{}> Tj\n0 -13 Td\n", ucs2_hex(&part)));
            y -= 13;
        }
    }
    content.push_str("ET\n");
    assemble(&[content], Some(note))
}

/// A document of many pages (A4): a title on the first page, then the lines, wrapped; a line
/// starting with `# ` is a heading. Page numbers at the foot.
pub fn document_pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let mut pages: Vec<String> = Vec::new();
    let mut content = format!("BT\n/F1 15 Tf\n50 790 Td\n<{}> Tj\n/F1 8 Tf\n0 -26 Td\n", ucs2_hex(title));
    let mut y = 764;
    let flush = |content: &mut String, pages: &mut Vec<String>| {
        let n = pages.len() + 1;
        content.push_str(&format!("ET\nBT\n/F1 8 Tf\n280 25 Td\n<{}> Tj\nET\n", ucs2_hex(&format!("- {n} -"))));
        pages.push(std::mem::take(content));
    };
    for l in lines {
        let (size, text, step) = match l.strip_prefix("# ") {
            Some(h) => (11, h, 18),
            None => (8, l.as_str(), 11),
        };
        for part in wrap(text, if size == 8 { 120 } else { 86 }) {
            if y < 50 {
                flush(&mut content, &mut pages);
                content = "BT\n/F1 8 Tf\n50 800 Td\n".into();
                y = 800;
            }
            content.push_str(&format!("/F1 {size} Tf\n<{}> Tj\n0 -{step} Td\n", ucs2_hex(&part)));
            y -= step;
        }
    }
    flush(&mut content, &mut pages);
    assemble(&pages, None)
}

/// Writes the objects of a PDF: catalogue, page tree, then per page its page and content
/// objects, then the Japanese font (shared).
fn assemble(pages: &[String], note: Option<&str>) -> Vec<u8> {
    let n = pages.len();
    let font = 3 + 2 * n;
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
    let mut objects = vec!["<< /Type /Catalog /Pages 2 0 R >>".to_owned(), format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" "))];
    for (i, c) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 {font} 0 R >> >> /Contents {} 0 R >>",
            4 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{c}endstream", c.len()));
    }
    objects.push(format!("<< /Type /Font /Subtype /Type0 /BaseFont /HeiseiKakuGo-W5 /Encoding /UniJIS-UCS2-HW-H /DescendantFonts [{} 0 R] >>", font + 1));
    objects.push(format!(
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /HeiseiKakuGo-W5 /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 2 >> \
         /FontDescriptor {} 0 R /DW 1000 /W [231 632 500] >>",
        font + 2
    ));
    objects.push(
        "<< /Type /FontDescriptor /FontName /HeiseiKakuGo-W5 /Flags 4 /FontBBox [-92 -250 1010 922] /ItalicAngle 0 /Ascent 880 /Descent -120 \
         /CapHeight 700 /StemV 93 >>"
            .to_owned(),
    );
    let mut pdf = Vec::new();
    pdf.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    if let Some(note) = note {
        pdf.extend_from_slice(format!("{NOTE_TAG}{}\n", base64::engine::general_purpose::STANDARD.encode(note)).as_bytes());
    }
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        pdf.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    pdf
}

/// The signed note inside a certificate PDF, if the file is one of ours.
pub fn note_of_pdf(bytes: &[u8]) -> Option<String> {
    let start = bytes.windows(NOTE_TAG.len()).position(|w| w == NOTE_TAG.as_bytes())? + NOTE_TAG.len();
    let end = start + bytes[start..].iter().position(|&b| b == b'\n')?;
    let b64 = std::str::from_utf8(&bytes[start..end]).ok()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let note = "mamori データ削除証明書 / data deletion certificate\nclient: CARDCO\n\n— sig\n";
        let pdf = certificate_pdf(note);
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert_eq!(note_of_pdf(&pdf).unwrap(), note);
        assert_eq!(certificate_pdf(note), pdf, "deterministic");
        let text = String::from_utf8_lossy(&pdf);
        // The xref offset points at the table, and the first object's offset at the object.
        let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref..].starts_with(b"xref"));
        let first: usize = std::str::from_utf8(&pdf[xref..]).unwrap().lines().nth(3).unwrap()[..10].parse().unwrap();
        assert!(pdf[first..].starts_with(b"1 0 obj"));
        assert!(text.contains(&ucs2_hex("データ削除証明書")));
        assert_eq!(ucs2_hex("A"), "0041");
        assert_eq!(wrap("あいう", 4), vec!["あい".to_owned(), "う".to_owned()]);
    }

    #[test]
    fn documents_run_over_pages() {
        let lines: Vec<String> = (0..200).map(|i| format!("行 {i}")).collect();
        let pdf = document_pdf("監査パック", &lines);
        let text = String::from_utf8_lossy(&pdf);
        let pages = text.matches("/Type /Page ").count();
        assert!(pages >= 3, "{pages} pages");
        assert!(text.contains(&format!("/Count {pages}")));
        assert!(note_of_pdf(&pdf).is_none());
        let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref..].starts_with(b"xref"));
    }
}
